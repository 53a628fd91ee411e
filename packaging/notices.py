"""Write THIRD-PARTY-NOTICES.txt, the licences of everything the app bundles.

``build.py`` calls it for the bundle folder (the installer copies that folder whole); by hand:
``python packaging/notices.py FOLDER``. The file starts with a summary (one line per component,
which Help > About shows), then every licence text: each package's own licence files, GDAL's, the
(L)GPL texts that Qt's and GEOS's licences require, and Python's.

Wheels carry native libraries in a ``<package>.libs`` folder without licence files of their own;
:data:`NATIVE_LIBRARIES` names their projects and licences. A library missing from it is listed as
"not identified", and ``tests/test_notices.py`` fails on it, so a new one cannot slip in unnoticed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path

from modelai_desktop.third_party import (
    APP_DISTRIBUTION,
    NOTICES_NAME,
    SUMMARY_END,
    Component,
    runtime_components,
)

LICENSE_TEXTS = Path(__file__).resolve().parent / "licenses"
NOT_IDENTIFIED = "not identified: check the library's project"
# Library name (without "lib", hash and suffix) -> (project, licence). Longest names are tried first.
NATIVE_LIBRARIES = {
    "gdal": ("GDAL", "MIT (GDAL's LICENSE.TXT below)"),
    "proj": ("PROJ", "MIT"),
    "geos_c": ("GEOS C API", "LGPL-2.1-or-later"),
    "geos": ("GEOS", "LGPL-2.1-or-later"),
    "tiff": ("libtiff", "libtiff"),
    "jpeg": ("libjpeg", "IJG"),
    "png16": ("libpng", "libpng-2.0"),
    "webp": ("libwebp", "BSD-3-Clause"),
    "sharpyuv": ("libwebp (sharpyuv)", "BSD-3-Clause"),
    "openjp2": ("OpenJPEG", "BSD-2-Clause"),
    "curl": ("curl", "curl"),
    "ssl": ("OpenSSL", "Apache-2.0"),
    "crypto": ("OpenSSL", "Apache-2.0"),
    "nghttp2": ("nghttp2", "MIT"),
    "sqlite3": ("SQLite", "blessing (public domain)"),
    "hdf5_hl": ("HDF5", "BSD-3-Clause"),
    "hdf5": ("HDF5", "BSD-3-Clause"),
    "netcdf": ("netCDF-C", "BSD-3-Clause"),
    "zstd": ("Zstandard", "BSD-3-Clause"),
    "lzma": ("XZ Utils (liblzma)", "0BSD"),
    "deflate": ("libdeflate", "MIT"),
    "gif": ("giflib", "MIT"),
    "json-c": ("json-c", "MIT"),
    "pcre2": ("PCRE2", "BSD-3-Clause WITH PCRE2-exception"),
    "Lerc": ("LERC", "Apache-2.0"),
    "blosc": ("c-blosc", "BSD-3-Clause"),
    "aec": ("libaec", "BSD-2-Clause"),
    "sz": ("libaec (szip)", "BSD-2-Clause"),
    "expat": ("Expat", "MIT"),
    "xml2": ("libxml2", "MIT"),
    "zlib": ("zlib", "Zlib"),
    "z": ("zlib", "Zlib"),
    "gfortran": ("GCC runtime (libgfortran)", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    "quadmath": ("GCC runtime (libquadmath)", "LGPL-2.1-or-later"),
    "gcc_s": ("GCC runtime (libgcc)", "GPL-3.0-or-later WITH GCC-exception-3.1"),
    "scipy_openblas": ("OpenBLAS", "BSD-3-Clause (in numpy's licence file)"),
}
_LIBRARY = re.compile(r"^(?:lib)?(?P<name>.+?)(?:-[0-9a-f]{8})*(?:\.so(?:\.\d+)*|\.dll|\.dylib|\.pyd)$")
QT_NOTE = (
    "Qt 6 (the Qt libraries inside PySide6-Essentials and shiboken6) is used under the GNU LGPL 3.0,"
    " whose full text follows, with the GNU GPL 3.0 it refers to. The Qt libraries are separate shared"
    " libraries in the app folder that you may replace with your own build. Sources:"
    " https://download.qt.io/official_releases/qt/ and https://code.qt.io/cgit/pyside/pyside-setup.git"
)
PYINSTALLER = "PyInstaller bootloader (starts the programs): GPL-2.0-or-later WITH Bootloader-exception"


def native_libraries(components: list[Component]) -> list[tuple[str, str, str]]:
    """(file name, project, licence) of every library in the packages' ``*.libs`` folders."""
    folders = {Path(str(metadata.distribution(component.name).locate_file(""))) for component in components}
    found = []
    for folder in sorted(folders):
        for path in sorted(folder.glob("*.libs/*")):
            project, license_id = identify_library(path.name)
            found.append((f"{path.parent.name}/{path.name}", project, license_id))
    return found


def identify_library(file_name: str) -> tuple[str, str]:
    """The project and licence of a bundled library file, from :data:`NATIVE_LIBRARIES`."""
    match = _LIBRARY.match(file_name)
    name = match.group("name") if match else file_name
    for key in sorted(NATIVE_LIBRARIES, key=len, reverse=True):
        if name.startswith(key):
            return NATIVE_LIBRARIES[key]
    return file_name, NOT_IDENTIFIED


def notices_text(components: list[Component], libraries: list[tuple[str, str, str]]) -> str:
    """The whole file: the summary, then the licence texts."""
    version = metadata.version(APP_DISTRIBUTION)
    python = f"Python {sys.version.split()[0]}: PSF-2.0"
    lines = [
        f"ModelAI {version} includes the following third-party software.",
        "",
        "Python packages:",
        *(f"  {component.line()}" for component in components),
        "",
        "Native libraries bundled by those packages:",
        *(f"  {name}: {project}, {license_id}" for name, project, license_id in libraries),
        "",
        f"  {python}",
        f"  {PYINSTALLER}",
        "",
        "The licence texts follow.",
        SUMMARY_END,
    ]
    sections = [
        (f"{component.name} {component.version}: {path.name}", path)
        for component in components
        for path in component.license_files
    ]
    sections += [("GDAL: LICENSE.TXT", _gdal_license())]
    sections += [(name, LICENSE_TEXTS / f"{name}.txt") for name in ("LGPL-3.0", "GPL-3.0", "LGPL-2.1")]
    sections += [(python, _python_license())]
    lines += ["", QT_NOTE, ""]
    for title, path in sections:
        if path is not None and path.is_file():
            lines += [SUMMARY_END, title, SUMMARY_END, path.read_text(encoding="utf-8", errors="replace"), ""]
    return "\n".join(lines)


def write_notices(folder: Path) -> Path:
    """Writes THIRD-PARTY-NOTICES.txt into ``folder`` (a temp name, then a rename) and returns it."""
    components = runtime_components()
    text = notices_text(components, native_libraries(components))
    target = folder / NOTICES_NAME
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{NOTICES_NAME}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    Path(temporary).replace(target)
    return target


def _gdal_license() -> Path | None:
    try:
        return Path(str(metadata.distribution("rasterio").locate_file("rasterio/gdal_data/LICENSE.TXT")))
    except metadata.PackageNotFoundError:
        return None


def _python_license() -> Path | None:
    base, version = Path(sys.base_prefix), f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = (base / "LICENSE.txt", base / "lib" / version / "LICENSE.txt")
    return next((path for path in candidates if path.is_file()), None)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python packaging/notices.py FOLDER")
    print(write_notices(Path(sys.argv[1])))
