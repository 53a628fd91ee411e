"""What every read-only record table of the window shares: a list-backed model and one look.

The raster list, the job history and the training pairs are all one row per engine record with
fixed text columns; keeping the model plumbing and the styling here makes them behave and look
alike, and leaves each table with only what is its own (its cells, colours and selection).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Generic, TypeVar

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

ModelIndex = QModelIndex | QPersistentModelIndex
Row = TypeVar("Row")


class RecordTableModel(QAbstractTableModel, Generic[Row]):
    """Rows held in a list, one fixed column title each; subclasses implement ``data``."""

    def __init__(self, columns: Sequence[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.columns = tuple(columns)
        self._rows: list[Row] = []

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> str | None:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section]
        return None


def style_record_table(
    view: QTableView,
    stretch_column: int,
    selection: QAbstractItemView.SelectionMode,
    resize: QHeaderView.ResizeMode = QHeaderView.ResizeMode.ResizeToContents,
) -> None:
    """Whole-row selection, alternating rows, no grid, left-aligned titles, one column stretched."""
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(selection)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    header = view.horizontalHeader()
    header.setSectionResizeMode(resize)
    header.setSectionResizeMode(stretch_column, QHeaderView.ResizeMode.Stretch)
    header.setHighlightSections(False)
    header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
