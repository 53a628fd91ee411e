"""THIRD-PARTY-NOTICES.txt: every bundled component with its licence, and the licence texts."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
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


def test_the_native_libraries_copyright_notices_are_in_the_file_once_per_project(notices: str):
    texts = notices.split(SUMMARY_END, 1)[1]
    assert "Copyright \u00a9 1988-1997 Sam Leffler" in texts  # libtiff
    assert "Frank Warmerdam placed\neverything under the following MIT style license" in texts  # PROJ
    assert "Copyright (c) 1995-2025 The PNG Reference Library Authors." in texts
    assert "This software is copyright (C) 1991-2024, Thomas G. Lane, Guido Vollbeding." in texts
    assert "Daniel Stenberg, <daniel@haxx.se>" in texts and "HDF5 (Hierarchical Data Format 5)" in texts
    assert "Copyright \u00a9 1991-2022 Unicode, Inc. All rights reserved." in texts  # ICU
    assert "GCC RUNTIME LIBRARY EXCEPTION" in texts and "SQLite Is Public Domain" in texts
    # Several libraries share a project (libwebp and libsharpyuv; four GEOS libraries): its text comes once.
    assert texts.count("\nlibwebp (native library): libwebp.txt\n") == 1
    assert texts.count("\nGEOS (native library): GEOS.txt\n") == 1


def test_the_licence_files_torch_ships_are_in_the_file_under_their_own_paths(notices: str):
    torch = metadata.distribution("torch")
    third_party = [entry for entry in torch.files or [] if "/licenses/third_party/" in entry.as_posix()]
    assert third_party, "the torch wheel carries the licences of the code it compiles in"
    for entry in third_party:
        assert f"torch {torch.version}: {entry.as_posix().split('.dist-info/', 1)[1]}\n" in notices


def test_every_native_library_in_the_installed_wheels_has_a_licence_text():
    notices = load_notices_module()
    libraries = notices.native_libraries(runtime_components())
    files = {library.file for library in libraries}
    projects = {library.project.name for library in libraries if library.project}
    assert {"GDAL", "PROJ", "GEOS", "Qt", "PyTorch"} <= projects
    if sys.platform == "linux":  # the Linux wheels' own layout; Windows wheels name and place them otherwise
        assert "torch/lib/libgomp.so.1" in files
        assert any(name.startswith("rasterio.libs/libgdal") for name in files)
        assert {"libtiff", "ICU", "OpenBLAS", "GCC runtime"} <= projects
    assert notices.libraries_without_license_text() == [], "add packaging/licenses/<project>.txt"
    for text in {library.project.text for library in libraries if library.project}:
        assert (notices.LICENSE_TEXTS / text).read_text(encoding="utf-8").strip()


def test_a_library_without_a_licence_text_is_reported():
    notices = load_notices_module()
    unknown = notices.NativeLibrary("foo.libs/libfoo-12345678.so.1", None)
    textless = notices.NativeLibrary("foo.libs/libbar.so", notices.NativeProject("Bar", "MIT", "Bar.txt"))
    known = notices.NativeLibrary("foo.libs/libtiff.so.6", notices.identify_library("libtiff.so.6"))
    assert notices.missing_license_texts([unknown, textless, known]) == [unknown.file, textless.file]


def test_an_installed_app_shows_the_summary_of_its_notices_file(notices, tmp_path, monkeypatch):
    (tmp_path / NOTICES_NAME).write_text(notices, encoding="utf-8")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "modelai-desktop"))
    shown = components_summary()
    assert shown == notices.split(SUMMARY_END)[0].strip() and "rasterio.libs/" in shown


@pytest.mark.parametrize(
    ("file_name", "project"),
    [
        ("libgdal-c8c9c467.so.36.3.10.3", "GDAL"),
        ("gdal.dll", "GDAL"),
        ("gdal-36.dll", "GDAL"),
        ("gdal-5c3b8e3e1b1e4d0c9a7f2d6e8b4a1c3d.dll", "GDAL"),
        ("libgdal.36.dylib", "GDAL"),
        ("libproj-4d6f3841.so.25.9.7.1", "PROJ"),
        ("proj_9.dll", "PROJ"),
        ("proj_9_7.dll", "PROJ"),
        ("libgeos_c-23da760b.so.1.20.5", "GEOS"),
        ("geos_c.dll", "GEOS"),
        ("libjpeg-799ada35.so.9.6.0", "libjpeg"),
        ("jpeg62.dll", "libjpeg"),
        ("libtiff-fb65e6fb.so.6.2.0", "libtiff"),
        ("tiff.dll", "libtiff"),
        ("libpng16-75ba44f9.so.16.50.0", "libpng"),
        ("libpng16.dll", "libpng"),
        ("libcrypto-b2553312.so.3", "OpenSSL"),
        ("libcrypto-3-x64.dll", "OpenSSL"),
        ("libLerc-c957a4c5.so.4", "LERC"),
        ("Lerc.dll", "LERC"),
        ("libsz-582805cb.so.2.0.1", "libaec"),
        ("szip.dll", "libaec"),
        ("libz.so.1", "zlib"),
        ("zlib1.dll", "zlib"),
        ("libgfortran-040039e1-0352e75f.so.5.0.0", "GCC runtime"),
        ("libgomp.so.1", "GCC runtime"),
        ("libscipy_openblas64_-32a4b2a6.so", "OpenBLAS"),
        ("libtorch_cpu.so", "PyTorch"),
        ("torch_cpu.dll", "PyTorch"),
        ("c10.dll", "PyTorch"),
        ("libQt6Core.so.6", "Qt"),
        ("Qt6Core.dll", "Qt"),
        ("libicuuc.so.73", "ICU"),
        ("libpyside6.abi3.so.6.10", "Qt for Python"),
        ("pyside6.abi3.dll", "Qt for Python"),
    ],
)
def test_libraries_are_identified_by_name_on_linux_and_windows(file_name: str, project: str):
    assert load_notices_module().identify_library(file_name).name == project


@pytest.mark.parametrize("file_name", ["libfoo-12345678.so.1", "libzip.so.5", "gdalfoo.dll", "msvcp140.dll"])
def test_a_library_of_another_project_is_not_taken_for_one_with_a_similar_name(file_name: str):
    assert load_notices_module().identify_library(file_name) is None
