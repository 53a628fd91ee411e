"""Write THIRD-PARTY-NOTICES.txt, the licences of everything the app bundles.

``build.py`` calls it for the bundle folder (the installer copies that folder whole); by hand:
``python packaging/notices.py FOLDER``. The file starts with a summary (one line per component,
which Help > About shows), then every licence text: each package's own licence files (torch's
include the third-party licences its wheel carries), the copyright notice and licence of each
native library the wheels bundle (``packaging/licenses/<project>.txt``, once per project), the
(L)GPL texts that Qt's, GEOS's and the GCC runtime's licences refer to, and Python's.

Wheels carry native libraries (``<package>.libs/``, ``torch/lib/``, PySide6's Qt) without licence
files of their own; :data:`NATIVE_LIBRARIES` names their projects and licence text files. A library
missing from it, or whose text file is missing, is reported by :func:`missing_license_texts`, and
``tests/test_notices.py`` fails on it, so a new one cannot slip in unnoticed.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

from modelai_desktop.third_party import (
    APP_DISTRIBUTION,
    NOTICES_NAME,
    SUMMARY_END,
    Component,
    runtime_components,
)

LICENSE_TEXTS = Path(__file__).resolve().parent / "licenses"
NOT_IDENTIFIED = "not identified: check the library's project"
GENERIC_TEXTS = ("LGPL-3.0.txt", "GPL-3.0.txt", "LGPL-2.1.txt")


class NativeProject(NamedTuple):
    """The project a bundled native library comes from, its licence, and the file in
    ``packaging/licenses/`` that holds its copyright notice and licence text."""

    name: str
    license: str
    text: str


class NativeLibrary(NamedTuple):
    """One shared library shipped inside a wheel; ``project`` is None when it is not identified."""

    file: str
    project: NativeProject | None


def _project(name: str, license_id: str, text: str | None = None) -> NativeProject:
    return NativeProject(name, license_id, text or f"{name.replace(' ', '-')}.txt")


_GDAL = _project("GDAL", "MIT")
_GEOS = _project("GEOS", "LGPL-2.1-or-later")
_WEBP = _project("libwebp", "BSD-3-Clause")
_OPENSSL = _project("OpenSSL", "Apache-2.0")
_HDF5 = _project("HDF5", "BSD-3-Clause")
_AEC = _project("libaec", "BSD-2-Clause")
_ZLIB = _project("zlib", "Zlib")
_GCC = _project("GCC runtime", "GPL-3.0-or-later WITH GCC-exception-3.1")
_ICU = _project("ICU", "Unicode-DFS-2016 AND ICU")
_TORCH = _project("PyTorch", "BSD-3-Clause")
_QT = _project("Qt", "LGPL-3.0-only", "LGPL-3.0.txt")
_PYSIDE = _project("Qt for Python", "LGPL-3.0-only", "LGPL-3.0.txt")
# Library name (without "lib", hash, version and suffix; see identify_library) -> its project.
# Wheels ship them in <package>.libs/ (auditwheel, delvewheel), torch/lib/ and PySide6's folders.
NATIVE_LIBRARIES = {
    "gdal": _GDAL,
    "proj": _project("PROJ", "MIT"),
    "geos": _GEOS,
    "geos_c": _GEOS,
    "tiff": _project("libtiff", "libtiff"),
    "jpeg": _project("libjpeg", "IJG"),
    "png16": _project("libpng", "libpng-2.0"),
    "webp": _WEBP,
    "sharpyuv": _WEBP,
    "openjp2": _project("OpenJPEG", "BSD-2-Clause"),
    "curl": _project("curl", "curl"),
    "ssl": _OPENSSL,
    "crypto": _OPENSSL,
    "nghttp2": _project("nghttp2", "MIT"),
    "sqlite3": _project("SQLite", "blessing (public domain)"),
    "hdf5": _HDF5,
    "hdf5_hl": _HDF5,
    "netcdf": _project("netCDF-C", "BSD-3-Clause"),
    "zstd": _project("Zstandard", "BSD-3-Clause"),
    "lzma": _project("XZ Utils", "0BSD"),
    "deflate": _project("libdeflate", "MIT"),
    "gif": _project("giflib", "MIT"),
    "json-c": _project("json-c", "MIT"),
    "pcre2": _project("PCRE2", "BSD-3-Clause WITH PCRE2-exception"),
    "lerc": _project("LERC", "Apache-2.0"),
    "blosc": _project("c-blosc", "BSD-3-Clause"),
    "aec": _AEC,
    "sz": _AEC,
    "szip": _AEC,
    "z": _ZLIB,
    "zlib": _ZLIB,
    "gfortran": _GCC,
    "gcc_s": _GCC,
    "gomp": _GCC,
    "quadmath": _project("libquadmath", "LGPL-2.1-or-later", "LGPL-2.1.txt"),
    "scipy_openblas": _project("OpenBLAS", "BSD-3-Clause"),
    "icudata": _ICU,
    "icui18n": _ICU,
    "icuuc": _ICU,
    "torch": _TORCH,
    "torchbind_test": _TORCH,
    "c10": _TORCH,
    "shm": _TORCH,
    "aoti_custom_ops": _TORCH,
    "backend_with_compiler": _TORCH,
    "jitbackend_test": _TORCH,
    "qt6": _QT,
    "pyside6": _PYSIDE,
    "pyside6qml": _PYSIDE,
    "shiboken6": _PYSIDE,
}
# Where wheels keep shared libraries that are not Python extension modules (relative to site-packages).
NATIVE_FOLDERS = ("*.libs", "torch/lib", "PySide6/Qt/lib", "PySide6", "shiboken6")
_LIBRARY = re.compile(
    r"^(?:lib)?(?P<name>.+?)(?:-[0-9a-f]{8,})*(?:\.(?:so|dll|dylib)(?:\.\d+)*)$", re.IGNORECASE
)
_EXTENSION_MODULE = re.compile(r"\.(?:cpython-[^.]+|abi3)\.so$|\.pyd$")
QT_NOTE = (
    "Qt 6 (the Qt libraries inside PySide6-Essentials and shiboken6) is used under the GNU LGPL 3.0,"
    " whose full text follows, with the GNU GPL 3.0 it refers to. The Qt libraries are separate shared"
    " libraries in the app folder that you may replace with your own build. Sources:"
    " https://download.qt.io/official_releases/qt/ and https://code.qt.io/cgit/pyside/pyside-setup.git"
)
PYINSTALLER = "PyInstaller bootloader (starts the programs): GPL-2.0-or-later WITH Bootloader-exception"


def native_libraries(components: list[Component]) -> list[NativeLibrary]:
    """Every shared library in the packages' :data:`NATIVE_FOLDERS`, with its project."""
    roots = {Path(str(metadata.distribution(component.name).locate_file(""))) for component in components}
    found = []
    for root in sorted(roots):
        for pattern in NATIVE_FOLDERS:
            found += [
                NativeLibrary(path.relative_to(root).as_posix(), identify_library(path.name))
                for path in sorted(root.glob(f"{pattern}/*"))
                if path.is_file() and _is_shared_library(path.name)
            ]
    return found


def identify_library(file_name: str) -> NativeProject | None:
    """The project of a library file, from its name on Linux (``libgdal-c8c9c467.so.36.3.10.3``),
    Windows (``gdal.dll``, ``gdal-<hash>.dll``, ``libcrypto-3-x64.dll``, ``Qt6Core.dll``) or macOS:
    the longest :data:`NATIVE_LIBRARIES` key the name starts with, where the key is followed by the
    end of the name or by a character that cannot continue a word (``proj_9``, ``jpeg62``, ``Qt6Core``),
    so that ``z`` is zlib but not ``zip``."""
    match = _LIBRARY.match(file_name)
    name = match.group("name") if match else file_name
    for key in sorted(NATIVE_LIBRARIES, key=len, reverse=True):
        rest = name[len(key) :]
        if name[: len(key)].lower() == key and not (rest and rest[0].islower()):
            return NATIVE_LIBRARIES[key]
    return None


def missing_license_texts(libraries: list[NativeLibrary]) -> list[str]:
    """The libraries that are not identified, or whose project has no licence text file (or an empty one)."""
    return [
        library.file
        for library in libraries
        if library.project is None or not _has_text(LICENSE_TEXTS / library.project.text)
    ]


def libraries_without_license_text() -> list[str]:
    """:func:`missing_license_texts` of the installed runtime packages (what a build bundles)."""
    return missing_license_texts(native_libraries(runtime_components()))


def notices_text(components: list[Component], libraries: list[NativeLibrary]) -> str:
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
        *(f"  {library.file}: {_describe(library.project)}" for library in libraries),
        "",
        f"  {python}",
        f"  {PYINSTALLER}",
        "",
        "The licence texts follow.",
        SUMMARY_END,
    ]
    sections = [
        (f"{component.name} {component.version}: {_license_title(path)}", path)
        for component in components
        for path in component.license_files
    ]
    sections += _native_sections(libraries)
    sections += [(name.removesuffix(".txt"), LICENSE_TEXTS / name) for name in GENERIC_TEXTS]
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


def _is_shared_library(file_name: str) -> bool:
    """A shared library that is not a Python extension module (those are the packages' own code)."""
    return bool(_LIBRARY.match(file_name)) and not _EXTENSION_MODULE.search(file_name)


def _describe(project: NativeProject | None) -> str:
    return f"{project.name}, {project.license}" if project else NOT_IDENTIFIED


def _native_sections(libraries: list[NativeLibrary]) -> list[tuple[str, Path]]:
    """One section per licence text of the identified native libraries, named after the projects
    that use it; the generic (L)GPL texts come once, later, for everything that refers to them."""
    projects: dict[str, set[str]] = {}
    for library in libraries:
        if library.project is not None and library.project.text not in GENERIC_TEXTS:
            projects.setdefault(library.project.text, set()).add(library.project.name)
    return [
        (f"{', '.join(sorted(names))} (native library): {text}", LICENSE_TEXTS / text)
        for text, names in sorted(projects.items(), key=lambda item: item[0].lower())
    ]


def _license_title(path: Path) -> str:
    """A licence file's path inside its dist-info folder: torch's hundred files are all "LICENSE"."""
    return path.as_posix().split(".dist-info/", 1)[-1]


def _has_text(path: Path) -> bool:
    return path.is_file() and bool(path.read_text(encoding="utf-8").strip())


def _python_license() -> Path | None:
    base, version = Path(sys.base_prefix), f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidates = (base / "LICENSE.txt", base / "lib" / version / "LICENSE.txt")
    return next((path for path in candidates if path.is_file()), None)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python packaging/notices.py FOLDER")
    print(write_notices(Path(sys.argv[1])))
