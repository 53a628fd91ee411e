"""File dialogs that open where the user last was, on every page and after a restart.

Every Open, Choose-folder and Save-as dialog of the window goes through these functions, so they
share one "last folder": the window hands them its `AppSettings` at start (`remember_in`), and
without settings (a widget tested alone) the folder is remembered for the session only. Call them
from plain slots, never inside a coroutine: their modal loops must not run in an asyncio task.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget

from modelai_desktop.settings import AppSettings

RASTER_FILTER = "GeoTIFF rasters (*.tif *.tiff *.TIF *.TIFF);;All files (*)"


class _FolderMemory:
    """The last folder used in a dialog, kept in the settings when there are some."""

    def __init__(self) -> None:
        self.settings: AppSettings | None = None
        self.session_folder: Path | None = None

    def last(self) -> Path:
        remembered = self.settings.last_folder() if self.settings is not None else self.session_folder
        return remembered if remembered is not None and remembered.is_dir() else Path.home()

    def remember(self, path: Path) -> None:
        folder = path if path.is_dir() else path.parent
        self.session_folder = folder
        if self.settings is not None:
            self.settings.set_last_folder(folder)


_memory = _FolderMemory()


def remember_in(settings: AppSettings | None) -> None:
    """Keeps the last folder in ``settings`` (None: for this session only)."""
    _memory.settings = settings


def last_folder() -> Path:
    """Where the next dialog opens: the last folder used, else the home folder."""
    return _memory.last()


def open_files(parent: QWidget, title: str, name_filter: str = RASTER_FILTER) -> list[Path]:
    """Files chosen in an Open dialog (empty when cancelled)."""
    names, _ = QFileDialog.getOpenFileNames(parent, title, str(_memory.last()), name_filter)
    paths = [Path(name) for name in names]
    if paths:
        _memory.remember(paths[0])
    return paths


def open_file(parent: QWidget, title: str, name_filter: str, start: Path | None = None) -> Path | None:
    """One file chosen in an Open dialog that starts in ``start`` or the last folder."""
    name, _ = QFileDialog.getOpenFileName(parent, title, str(start or _memory.last()), name_filter)
    if not name:
        return None
    _memory.remember(Path(name))
    return Path(name)


def existing_folder(parent: QWidget, title: str, start: Path | None = None) -> Path | None:
    """A folder chosen in a folder dialog that starts in ``start`` or the last folder."""
    folder = QFileDialog.getExistingDirectory(parent, title, str(start or _memory.last()))
    if not folder:
        return None
    _memory.remember(Path(folder))
    return Path(folder)


def save_file(parent: QWidget, title: str, name_filter: str, start: Path | None = None) -> Path | None:
    """A file name chosen in a Save dialog that starts at ``start`` or in the last folder."""
    name, _ = QFileDialog.getSaveFileName(parent, title, str(start or _memory.last()), name_filter)
    if not name:
        return None
    _memory.remember(Path(name).parent)
    return Path(name)
