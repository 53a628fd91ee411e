"""Build the one-folder app (``dist/ModelAI/``): ``python packaging/build.py [--variant cpu|cuda]``.

The variant is the torch build installed in this Python (the CPU wheel, or the CUDA wheel from
PyTorch's index): this script refuses to build a "cuda" folder from a CPU-only torch or the other
way round, because the mistake would only show on a user's machine. It ends by printing the bundle's
size and largest files, which decide whether the CUDA installer stays under Inno Setup's 4.2 GB limit.
The bundle gets THIRD-PARTY-NOTICES.txt (see notices.py), which the installer ships with the rest.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from notices import libraries_without_license_text, write_notices  # packaging/ is first on sys.path
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtSvg import QSvgRenderer

PACKAGING = Path(__file__).resolve().parent
ROOT = PACKAGING.parent
SPEC = PACKAGING / "modelai.spec"
ICON_SOURCE = ROOT / "resources" / "modelai.svg"
ICON_SIZE = 256
APP_NAME = "ModelAI"
ENTRY_MODULES = ("engine.cli", "modelai_desktop.app")
LARGEST_SHOWN = 12


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("cpu", "cuda"), default="cpu", help="torch build to bundle")
    parser.add_argument("--dist", type=Path, default=ROOT / "dist", help="output folder (default: dist/)")
    parser.add_argument(
        "--work", type=Path, default=ROOT / "build" / "pyinstaller", help="PyInstaller's work folder"
    )
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's caches first")
    return parser.parse_args(argv)


def check_environment(variant: str) -> str:
    """Fail fast, with the fix, when PyInstaller, the app or the right torch build is missing."""
    if importlib.util.find_spec("PyInstaller") is None:
        sys.exit("build.py: PyInstaller is not installed here; run: pip install '.[packaging]'")
    missing = [name for name in ENTRY_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        sys.exit(f"build.py: cannot import {', '.join(missing)}; run: pip install -e . (from {ROOT})")
    if variant == "cuda" and torch.version.cuda is None:
        sys.exit(
            f"build.py: --variant cuda, but torch {torch.__version__} here is CPU-only. Install the CUDA "
            "build first: pip install torch==<version> --index-url https://download.pytorch.org/whl/cu126"
        )
    if variant == "cpu" and torch.version.cuda is not None:
        sys.exit(
            f"build.py: --variant cpu, but torch {torch.__version__} here is built for CUDA "
            f"{torch.version.cuda}: the folder would be several GB. Install the CPU build "
            "(--index-url https://download.pytorch.org/whl/cpu), or build --variant cuda."
        )
    return torch.__version__


def render_icon(svg: Path, ico: Path) -> Path:
    """The programs' Windows icon, drawn from the app's SVG so that there is one source picture."""
    image = QImage(ICON_SIZE, ICON_SIZE, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    QSvgRenderer(str(svg)).render(painter)
    painter.end()
    ico.parent.mkdir(parents=True, exist_ok=True)
    if not image.save(str(ico), "ICO"):
        sys.exit(f"build.py: cannot write the icon {ico} (from {svg}).")
    return ico


def run_pyinstaller(dist: Path, work: Path, icon: Path, clean: bool) -> Path:
    command = [
        sys.executable, "-m", "PyInstaller", str(SPEC), "--noconfirm",
        "--distpath", str(dist), "--workpath", str(work),
    ]  # fmt: skip
    if clean:
        command.append("--clean")
    print("build.py:", " ".join(command), flush=True)
    environment = {**os.environ, "PYTHONNOUSERSITE": "1", "MODELAI_ICON": str(icon)}
    subprocess.run(command, check=True, cwd=ROOT, env=environment)
    return dist / APP_NAME


def describe_bundle(folder: Path) -> str:
    """Total size and the largest files, relative to the bundle folder."""
    files = [path for path in folder.rglob("*") if path.is_file() and not path.is_symlink()]
    total = sum(path.stat().st_size for path in files)
    largest = sorted(files, key=lambda path: path.stat().st_size, reverse=True)[:LARGEST_SHOWN]
    lines = [f"{folder}: {total / 1e6:,.0f} MB in {len(files)} files; largest:"]
    lines += [f"  {path.stat().st_size / 1e6:9,.1f} MB  {path.relative_to(folder)}" for path in largest]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch_version = check_environment(args.variant)
    work = args.work.resolve()
    icon = render_icon(ICON_SOURCE, work / "modelai.ico")
    bundle = run_pyinstaller(args.dist.resolve(), work, icon, args.clean)
    print(f"build.py: licences of the bundled software in {write_notices(bundle)}")
    unresolved = libraries_without_license_text()
    if unresolved:
        sys.exit(
            f"build.py: no licence text for {', '.join(unresolved)}: add the project of each to"
            " NATIVE_LIBRARIES in packaging/notices.py and its notice to packaging/licenses/, then rebuild."
        )
    print(f"build.py: {APP_NAME} ({args.variant}, torch {torch_version}) built.")
    print(describe_bundle(bundle))
    program = "modelai.exe" if sys.platform == "win32" else "modelai"
    print(f"Check it with: {bundle / program} --self-test")
    return 0


if __name__ == "__main__":
    sys.exit(main())
