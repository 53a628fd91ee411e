"""The Data page: the rasters the user brought in, their metadata, and a preview of the selected one.

Adding files is a coroutine: each folder scan and metadata read awaits a read thread, rows appear as
they are read, and files that are not rasters are named in an inline banner while the others are
still taken. Selecting a row starts the preview read; selecting another one cancels it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout, QWidget

from engine.errors import RasterError
from engine.rasters.read import RASTER_SUFFIXES, RasterInfo, find_rasters, read_info
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.raster_list import RasterTable
from modelai_desktop.widgets.raster_view import RasterView

log = logging.getLogger(__name__)

EMPTY_TEXT = (
    "Drop GeoTIFF files or a folder of them anywhere on this window,\nor choose File → Open… (Ctrl+O)."
)
SELECT_TEXT = "Select a raster in the list to preview it."
BANNER_MAX_ITEMS = 5


@dataclass
class LoadReport:
    """What happened to the paths given to `DataPage.load_paths`."""

    added: list[Path] = field(default_factory=list)
    already_listed: list[Path] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)


def raster_candidates(path: Path) -> list[Path]:
    """The raster files a dropped path stands for: a folder's rasters, or the file itself.

    Raises:
        RasterError: a folder holds no raster, or a file has no raster suffix (`RASTER_SUFFIXES`).
    """
    if path.is_dir():
        return find_rasters([path])
    if path.suffix.lower() not in RASTER_SUFFIXES:
        kinds = ", ".join(sorted(RASTER_SUFFIXES))
        raise RasterError(f"{path}: not a raster file ({kinds}); only rasters can be added.")
    return [path]


class DataPage(QWidget):
    """The list of rasters above the preview of the selected one.

    Signals:
        rasters_added(list): paths newly listed, for the recent files menu.
        open_requested(): the user asked for the Open… dialog, which the main window owns.
        status_message(str): a one-line summary for the status bar.
    """

    rasters_added = Signal(list)
    open_requested = Signal()
    status_message = Signal(str)

    def __init__(self, tasks: BackgroundTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._preview_task: asyncio.Task[None] | None = None
        self.banner = MessageBanner()
        self.table = RasterTable()
        self.table.selected.connect(self._on_selected)
        self.raster_view = RasterView(tasks)
        self.raster_view.preview_failed.connect(self.status_message)
        self.raster_view.show_placeholder(EMPTY_TEXT)

        title = QLabel("Rasters")
        title.setObjectName("sectionTitle")
        self.count_label = QLabel("none yet")
        add_button = QPushButton("Add rasters…")
        add_button.setToolTip("Choose GeoTIFF files to add (Ctrl+O)")
        add_button.clicked.connect(self.open_requested)
        self.remove_button = QPushButton("Remove")
        self.remove_button.setToolTip(
            "Remove the selected rasters from the list (Delete); files stay on disk"
        )
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self.table.remove_selected)
        self.table.selectionModel().selectionChanged.connect(self._update_remove_button)
        self.table.raster_model.rowsRemoved.connect(self._update_count)
        QShortcut(QKeySequence.StandardKey.Delete, self.table, self.table.remove_selected).setContext(
            Qt.ShortcutContext.WidgetShortcut
        )

        header = QHBoxLayout()
        header.addWidget(title)
        header.addWidget(self.count_label)
        header.addStretch(1)
        header.addWidget(add_button)
        header.addWidget(self.remove_button)
        list_panel = QWidget()
        list_layout = QVBoxLayout(list_panel)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addLayout(header)
        list_layout.addWidget(self.table)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(list_panel)
        splitter.addWidget(self.raster_view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([230, 560])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)

    def rasters(self) -> list[RasterInfo]:
        """Every listed raster, in list order."""
        return self.table.raster_model.infos()

    def add_paths(self, paths: Sequence[Path]) -> asyncio.Task[LoadReport]:
        """Starts adding files and folders in the background; the task is kept until it ends."""
        return self._tasks.start(self.load_paths(paths), name="add-rasters")

    async def load_paths(self, paths: Sequence[Path]) -> LoadReport:
        """Lists the rasters among ``paths`` (folders are scanned), reporting those refused.

        The first raster added is selected when nothing was, which starts its preview.
        """
        report = LoadReport()
        for path in (Path(item).expanduser().resolve() for item in paths):
            try:
                candidates = await self._tasks.run_blocking(raster_candidates, path)
            except RasterError as exc:
                report.refused.append((path, str(exc)))
                continue
            for candidate in candidates:
                try:
                    info = await self._tasks.run_blocking(read_info, candidate)
                except RasterError as exc:
                    report.refused.append((candidate, str(exc)))
                    continue
                if not self.table.add(info):
                    report.already_listed.append(candidate)
                    continue
                report.added.append(candidate)
                self._update_count()
                if self.table.current_info() is None:
                    self.table.select_path(candidate)
        self._report(report)
        return report

    def _report(self, report: LoadReport) -> None:
        for path, message in report.refused:
            log.info("Not added %s: %s", path, message)
        if report.refused:
            self.banner.show_message(_refusal_text(report.refused))
        if report.added:
            self.rasters_added.emit(report.added)
        parts = [f"Added {len(report.added)} raster{'s' if len(report.added) != 1 else ''}"]
        if report.already_listed:
            parts.append(f"{len(report.already_listed)} already listed")
        if report.refused:
            parts.append(f"{len(report.refused)} not added (see the message above the list)")
        self.status_message.emit("; ".join(parts) + ".")

    def _on_selected(self, info: RasterInfo | None) -> None:
        if self._preview_task is not None:
            self._preview_task.cancel()
            self._preview_task = None
        if info is None:
            self.raster_view.show_placeholder(SELECT_TEXT if self.rasters() else EMPTY_TEXT)
            return
        self._preview_task = self._tasks.start(self.raster_view.show_raster(info), name="preview")

    def _update_remove_button(self) -> None:
        self.remove_button.setEnabled(self.table.selectionModel().hasSelection())

    def _update_count(self) -> None:
        count = len(self.rasters())
        self.count_label.setText(f"{count} raster{'s' if count != 1 else ''}" if count else "none yet")


def _refusal_text(refused: list[tuple[Path, str]]) -> str:
    lines = [f"Not added ({len(refused)}):"]
    for path, message in refused[:BANNER_MAX_ITEMS]:
        reason = message.removeprefix(f"{path}: ").removeprefix(f"{path} ")
        lines.append(f"• {path.name} — {reason}")
    if len(refused) > BANNER_MAX_ITEMS:
        lines.append(f"… and {len(refused) - BANNER_MAX_ITEMS} more; the log lists them all.")
    return "\n".join(lines)
