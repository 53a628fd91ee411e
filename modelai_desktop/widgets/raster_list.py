"""The list of rasters the user brought in, one row of metadata per file.

The rows are `RasterInfo` values read by the engine, so what the table shows is exactly what the
engine will check later (size, bands, data type, CRS, pixel size, nodata).
"""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from engine.rasters.read import RasterInfo
from modelai_desktop.widgets.record_table import ModelIndex, RecordTableModel, style_record_table

COLUMNS = ("Name", "Size (W × H)", "Bands", "Type", "CRS", "Pixel size", "Nodata", "Folder")


def describe_cells(info: RasterInfo) -> tuple[str, ...]:
    """The text of each column for one raster."""
    bands = f"{info.count - 1} + alpha" if info.alpha_band else str(info.count)
    unit = "°" if info.is_geographic else ""
    pixel_x, pixel_y = info.pixel_size
    return (
        info.path.name,
        f"{info.width} × {info.height}",
        bands,
        info.dtype,
        info.crs or "none",
        f"{pixel_x:.6g}{unit} × {pixel_y:.6g}{unit}",
        _nodata_text(info.nodata),
        str(info.path.parent),
    )


def _nodata_text(nodata: float | None) -> str:
    if nodata is None:
        return "none"
    if math.isnan(nodata):
        return "NaN"
    return f"{nodata:g}"


class RasterListModel(RecordTableModel[RasterInfo]):
    """Rasters in the order they were added; one path appears once."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(COLUMNS, parent)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> str | None:
        if not index.isValid():
            return None
        info = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return describe_cells(info)[index.column()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{info.path}\n{info.crs_wkt or 'No coordinate reference system'}"[:600]
        return None

    def infos(self) -> list[RasterInfo]:
        return list(self._rows)

    def info_at(self, row: int) -> RasterInfo:
        return self._rows[row]

    def row_of(self, path: Path) -> int | None:
        resolved = path.resolve()
        return next((row for row, info in enumerate(self._rows) if info.path.resolve() == resolved), None)

    def add(self, info: RasterInfo) -> bool:
        """Appends a raster; False (and no change) when its file is already listed."""
        if self.row_of(info.path) is not None:
            return False
        row = len(self._rows)
        self.beginInsertRows(QModelIndex(), row, row)
        self._rows.append(info)
        self.endInsertRows()
        return True

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._rows[row]
            self.endRemoveRows()


class RasterTable(QTableView):
    """A table of rasters (several rows can be selected to remove them); emits the current raster."""

    selected = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.raster_model = RasterListModel(self)
        self.setModel(self.raster_model)
        style_record_table(
            self,
            len(COLUMNS) - 1,
            QAbstractItemView.SelectionMode.ExtendedSelection,
            QHeaderView.ResizeMode.Interactive,
        )
        self.selectionModel().currentRowChanged.connect(self._on_current_changed)

    def add(self, info: RasterInfo) -> bool:
        """Adds a raster row and fits the columns to their text (the folder column takes the rest)."""
        added = self.raster_model.add(info)
        if added:
            for column in range(len(COLUMNS) - 1):
                self.resizeColumnToContents(column)
        return added

    def select_path(self, path: Path) -> None:
        row = self.raster_model.row_of(path)
        if row is not None:
            self.selectRow(row)

    def current_info(self) -> RasterInfo | None:
        index = self.currentIndex()
        return self.raster_model.info_at(index.row()) if index.isValid() else None

    def remove_selected(self) -> None:
        rows = [index.row() for index in self.selectionModel().selectedRows()]
        self.raster_model.remove_rows(rows)
        self.selected.emit(self.current_info())

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.selected.emit(self.raster_model.info_at(current.row()) if current.isValid() else None)
