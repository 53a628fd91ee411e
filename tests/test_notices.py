"""THIRD-PARTY-NOTICES.txt: every bundled component with its licence, and the licence texts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from modelai_desktop.third_party import NOTICES_NAME, SUMMARY_END, components_summary, runtime_components

ROOT = Path(__file__).resolve().parents[1]


def load_notices_module():
    """packaging/notices.py by path (``packaging`` is also the name of a PyPI library)."""
    spec = importlib.util.spec_from_file_location("notices", ROOT / "packaging" / "notices.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def notices(tmp_path_factory: pytest.TempPathFactory) -> str:
    folder = tmp_path_factory.mktemp("bundle")
    path = load_notices_module().write_notices(folder)
    assert path == folder / NOTICES_NAME and [item.name for item in folder.iterdir()] == [NOTICES_NAME]
    return path.read_text(encoding="utf-8")


def test_the_runtime_closure_holds_the_app_dependencies_and_no_dev_tools():
    names = {component.name.lower().replace("_", "-") for component in runtime_components()}
    assert {"torch", "numpy", "rasterio", "pyside6-essentials", "shiboken6", "pyqtgraph", "qasync"} <= names
    assert {"safetensors", "platformdirs", "affine"} <= names
    assert not names & {"pytest", "ruff", "hypothesis", "pytest-qt", "pyinstaller", "modelai-desktop"}


def test_the_notices_list_every_component_and_hold_the_licence_texts(notices: str):
    summary, texts = notices.split(SUMMARY_END, 1)
    for component in runtime_components():
        assert f"  {component.line()}\n" in summary
    assert "PySide6_Essentials 6.10.2: LGPL-3.0-only" in summary
    assert "rasterio.libs/libgdal" in summary and ": GDAL, MIT" in summary
    assert ": GEOS, LGPL-2.1-or-later" in summary and "Python 3." in summary
    assert "not identified" not in summary, "a bundled library needs an entry in NATIVE_LIBRARIES"
    assert "GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 3" in texts
    assert "GNU LESSER GENERAL PUBLIC LICENSE\n                       Version 2.1" in texts
    assert "GNU GENERAL PUBLIC LICENSE\n                       Version 3" in texts
    assert "GDAL/OGR Licensing" in texts and "PYTHON SOFTWARE FOUNDATION LICENSE" in texts
    assert "torch 2.13.0" in texts and "Apache License" in texts


def test_an_installed_app_shows_the_summary_of_its_notices_file(notices, tmp_path, monkeypatch):
    (tmp_path / NOTICES_NAME).write_text(notices, encoding="utf-8")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "modelai-desktop"))
    shown = components_summary()
    assert shown == notices.split(SUMMARY_END)[0].strip() and "rasterio.libs/" in shown


@pytest.mark.parametrize(
    ("file_name", "project"),
    [
        ("libgeos_c-23da760b.so.1.20.5", "GEOS C API"),
        ("libgfortran-040039e1-0352e75f.so.5.0.0", "GCC runtime (libgfortran)"),
        ("gdal-36.dll", "GDAL"),
        ("libcrypto-3-x64.dll", "OpenSSL"),
        ("libfoo-12345678.so.1", "libfoo-12345678.so.1"),
    ],
)
def test_libraries_are_identified_by_name_on_linux_and_windows(file_name: str, project: str):
    assert load_notices_module().identify_library(file_name)[0] == project
