"""The rasters a job can use: those of the Data page, plus files added here, several selectable.

The list follows the Data page's table as it changes, so a raster dropped on the window is ready to
predict without a second step; files added here stay available even when the Data page drops them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QGroupBox,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.rasters.read import RasterInfo, read_info
from modelai_desktop import file_dialogs
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.widgets.raster_list import RasterListModel

PATH_ROLE = Qt.ItemDataRole.UserRole


class RasterChoice(QGroupBox):
    """A multi-selection list of rasters.

    Signals:
        selection_changed(): the selected rasters changed.
        current_changed(object): the raster to preview (`RasterInfo`), or None when the list is empty.
        refused(str): files that could not be added, and why.
    """

    selection_changed = Signal()
    current_changed = Signal(object)
    refused = Signal(str)

    def __init__(
        self, tasks: BackgroundTasks, data_rasters: RasterListModel, parent: QWidget | None = None
    ) -> None:
        super().__init__("Rasters to predict (select one or more)", parent)
        self._tasks = tasks
        self._data_rasters = data_rasters
        self._infos: dict[Path, RasterInfo] = {}
        self._added_here: list[RasterInfo] = []
        self.list = QListWidget()
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.list.setMinimumHeight(90)
        self.list.setToolTip("The rasters of the Data page and the files added here")
        self.list.itemSelectionChanged.connect(self.selection_changed)
        self.list.currentItemChanged.connect(
            lambda item, _previous: self.current_changed.emit(self._info(item))
        )
        add = QPushButton("Add files…")
        add.clicked.connect(self.choose_files)
        select_all = QPushButton("Select all")
        select_all.clicked.connect(self.list.selectAll)
        buttons = QHBoxLayout()
        buttons.addWidget(add)
        buttons.addWidget(select_all)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        for change in (data_rasters.rowsInserted, data_rasters.rowsRemoved, data_rasters.modelReset):
            change.connect(self._sync)
        self._sync()

    def selected(self) -> list[Path]:
        """The selected rasters, in list order."""
        rows = sorted(self.list.row(item) for item in self.list.selectedItems())
        return [Path(self.list.item(row).data(PATH_ROLE)) for row in rows]

    def select(self, paths: Sequence[Path]) -> None:
        """Selects exactly ``paths`` (those that are listed); the first becomes the previewed one."""
        wanted = {Path(path).resolve() for path in paths}
        first = None
        for row in range(self.list.count()):
            item = self.list.item(row)
            chosen = Path(item.data(PATH_ROLE)) in wanted
            item.setSelected(chosen)
            if chosen and first is None:
                first = item
        if first is not None and self.list.currentItem() not in self.list.selectedItems():
            self.list.setCurrentItem(first, QItemSelectionModel.SelectionFlag.NoUpdate)

    def current(self) -> RasterInfo | None:
        """The raster to preview."""
        return self._info(self.list.currentItem())

    def add_paths(self, paths: Sequence[Path]) -> asyncio.Task[None]:
        return self._tasks.start(self.load_paths(paths), name="add-predict-rasters")

    async def load_paths(self, paths: Sequence[Path]) -> None:
        """Reads the headers of files added here and selects them; unreadable ones are reported."""
        refused = []
        for path in paths:
            try:
                info = await self._tasks.run_blocking(read_info, Path(path).expanduser().resolve())
            except EngineError as exc:
                refused.append(str(exc))
                continue
            if info.path not in self._infos:
                self._added_here.append(info)
            self._sync()
        self.select(paths)
        if refused:
            self.refused.emit("Not added:\n" + "\n".join(refused))

    def choose_files(self) -> None:
        """The Add files… dialog (a plain slot, so its modal loop is safe)."""
        paths = file_dialogs.open_files(self, "Add rasters to predict")
        if paths:
            self.add_paths(paths)

    def _on_current_item_changed(self, item: QListWidgetItem | None, _previous: object) -> None:
        self.current_changed.emit(self._info(item))

    def _info(self, item: QListWidgetItem | None) -> RasterInfo | None:
        return self._infos.get(Path(item.data(PATH_ROLE))) if item is not None else None

    def _sync(self) -> None:
        """Lists the Data page's rasters, then those added here, keeping the selection and the current one."""
        selected = set(self.selected())
        current = self.current()
        infos = list(dict.fromkeys([*self._data_rasters.infos(), *self._added_here]))
        self._infos = {info.path: info for info in infos}
        self.list.blockSignals(True)
        self.list.clear()
        for info in infos:
            item = QListWidgetItem(info.path.name)
            item.setData(PATH_ROLE, str(info.path))
            item.setToolTip(f"{info.path}\n{info.describe()}")
            self.list.addItem(item)
            item.setSelected(info.path in selected)
            if current is not None and info.path == current.path:
                self.list.setCurrentItem(item, QItemSelectionModel.SelectionFlag.NoUpdate)
        self.list.blockSignals(False)
        if self.list.currentItem() is None:
            if infos:
                self.list.setCurrentRow(0)
            else:
                self.current_changed.emit(None)
        self.selection_changed.emit()
