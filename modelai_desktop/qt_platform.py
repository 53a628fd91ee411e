"""Why the window cannot open on a Linux X11 desktop: the system libraries Qt's xcb plugin lacks.

When a library of Qt's xcb platform plugin is missing, Qt aborts the process with a message that
names ``xcb-cursor0`` whatever is really missing. Asking the system linker about the plugin first
names the actual files, and the Debian/Ubuntu packages that hold them, before Qt gets to abort.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# The libraries Qt 6's xcb platform plugin links (``ldd libqxcb.so``) and their Debian/Ubuntu
# packages; README.md and .ci/run list the same packages.
XCB_PACKAGES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}
_NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.MULTILINE)
_CANNOT_OPEN = re.compile(r"(\S+\.so[.\d]*): cannot open shared object file")


def uses_xcb(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """True where Qt will pick its xcb (X11) platform plugin: Linux, no other platform asked for."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if not sys.platform.startswith("linux"):
        return False
    if platform:
        return platform.startswith("xcb")
    return not environ.get("WAYLAND_DISPLAY")


def xcb_plugin() -> Path:
    """The xcb platform plugin of the installed PySide6."""
    import PySide6

    return Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"


def missing_libraries(library: Path) -> list[str]:
    """The shared libraries that ``library`` needs and the system lacks ([] when it would load).

    ``ldd`` lists every missing file; where there is no ``ldd``, loading the library (as Qt will)
    names the first one.
    """
    ldd = shutil.which("ldd")
    if ldd is not None:
        try:
            listing = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            return list(dict.fromkeys(_NOT_FOUND.findall(listing.stdout)))
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        first = _CANNOT_OPEN.search(str(exc))
        return [first.group(1) if first else str(exc)]
    return []


def xcb_problem() -> str:
    """A message naming the libraries (and packages) the window lacks on X11; "" when none."""
    if not uses_xcb():
        return ""
    plugin = xcb_plugin()
    if not plugin.is_file():
        return ""
    missing = missing_libraries(plugin)
    if not missing:
        return ""
    packages = sorted({XCB_PACKAGES[name] for name in missing if name in XCB_PACKAGES})
    install = f" Install them, e.g. `sudo apt-get install {' '.join(packages)}`." if packages else ""
    return (
        f"The window cannot open on X11: Qt's xcb platform plugin ({plugin.name}) needs "
        f"{', '.join(missing)}, which this system lacks.{install} (README.md lists every library the"
        " window needs.)"
    )
