"""The engine never imports Qt nor the window, so it runs headless and where Qt is not installed."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[1] / "engine"
FORBIDDEN = frozenset({"PySide6", "shiboken6", "pyqtgraph", "qasync", "modelai_desktop"})


def forbidden_imports(source: str) -> list[str]:
    """Top-level packages from FORBIDDEN that a module's source imports (at any depth of the code)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [name for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def test_the_checker_finds_every_form_of_import():
    source = (
        "import os\nimport PySide6.QtCore\nfrom pyqtgraph import ImageItem\n"
        "def later():\n    import qasync\n    from modelai_desktop.app import main\nfrom . import raster\n"
    )
    assert forbidden_imports(source) == ["PySide6.QtCore", "pyqtgraph", "qasync", "modelai_desktop.app"]


def test_engine_never_imports_qt_or_the_window():
    modules = sorted(ENGINE.rglob("*.py"))
    assert len(modules) > 5
    offenders = {
        str(path.relative_to(ENGINE.parent)): names
        for path in modules
        if (names := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"engine modules import Qt or the window: {offenders}"
