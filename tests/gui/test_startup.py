"""The first seconds: a window before the engine's heavy imports, and the real reason when X11 fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modelai_desktop.qt_platform import XCB_PACKAGES, missing_libraries, xcb_plugin
from modelai_desktop.startup import ENGINE_MODULES, load_engine_off_thread

pytestmark = pytest.mark.gui
GONE = "libmodelai-test-removed.so.1"


def test_the_app_shows_its_first_window_before_importing_torch():
    """Issue 16/18: the window waited for torch, imported on the GUI thread through the pages."""
    code = (
        "import sys\nimport modelai_desktop.app\n"
        "print(sorted(name for name in ('torch', 'modelai_desktop.main_window') if name in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_the_engine_loads_on_a_thread_that_ends(run):
    run(load_engine_off_thread())
    assert all(name in sys.modules for name in ENGINE_MODULES)


@pytest.fixture
def library_missing_a_dependency(tmp_path: Path) -> Path:
    """A real shared library linked against one that was removed afterwards, as on a bare desktop.

    The missing library's name is one no system has, so the test holds where the xcb libraries are
    all installed (CI installs them)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not sys.platform.startswith("linux"):
        pytest.skip("needs a C compiler on Linux to build a library with a missing dependency")
    (tmp_path / "gone.c").write_text("int gone(void) { return 1; }\n")
    (tmp_path / "plugin.c").write_text("int gone(void);\nint plugin(void) { return gone(); }\n")
    build = [compiler, "-shared", "-fPIC"]
    gone = tmp_path / GONE
    subprocess.run([*build, f"-Wl,-soname,{GONE}", "-o", gone, tmp_path / "gone.c"], check=True)
    subprocess.run([*build, "-o", tmp_path / "libplugin.so", tmp_path / "plugin.c", gone], check=True)
    gone.unlink()
    return tmp_path / "libplugin.so"


def test_a_missing_library_is_named_by_ldd_and_by_loading(library_missing_a_dependency, monkeypatch):
    assert missing_libraries(library_missing_a_dependency) == [GONE]
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # a system without ldd
    assert missing_libraries(library_missing_a_dependency) == [GONE]


def test_the_window_names_the_missing_xcb_libraries_instead_of_aborting(tmp_path):
    """Issue 18: Qt named xcb-cursor0 while libxcb-icccm4 and libxcb-keysyms1 were missing."""
    missing = missing_libraries(xcb_plugin()) if sys.platform.startswith("linux") else []
    if not missing:
        pytest.skip("every library of Qt's xcb plugin is installed here")
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99", "MODELAI_HOME": str(tmp_path)}
    env.pop("WAYLAND_DISPLAY", None)
    result = subprocess.run(
        [sys.executable, "-m", "modelai_desktop"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr
    assert all(name in result.stderr for name in missing)
    assert all(XCB_PACKAGES[name] in result.stderr for name in missing if name in XCB_PACKAGES)
