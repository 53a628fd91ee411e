"""The pairing table: each training image, the mask it pairs with (or, for polygon labels, its
labelled pixels per class), and what is wrong with the pair.

Problems are flagged here, before anything runs, because a mask of the wrong size found after an
hour of training is an hour lost. Blocking problems are red; warnings (a mask with a single
class) are amber and do not stop training.
"""

from __future__ import annotations

from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTableWidget, QTableWidgetItem, QWidget

from modelai_desktop.training_data import PairRow
from modelai_desktop.widgets.record_table import style_record_table

COLUMNS = ("Image", "Mask", "Size", "Check")
CHECK_COLUMN = COLUMNS.index("Check")
PROBLEM_COLOR = "#b3261e"
WARNING_COLOR = "#8a5a00"
OK_COLOR = "#1e7b34"
VISIBLE_ROWS = (3, 6)


def check_text(row: PairRow) -> tuple[str, str]:
    """The Check cell of a row and its colour."""
    if row.problem:
        return f"✖ {row.problem}", PROBLEM_COLOR
    if row.warning:
        return f"⚠ {row.warning}", WARNING_COLOR
    return "✔ ready", OK_COLOR


def _mask_cell(row: PairRow) -> tuple[str, str]:
    """The mask's name, or for a mask rasterised from polygons its labelled pixels per class."""
    if row.mask is None:
        return "—", "no mask"
    if row.labels:
        return row.labels, f"Rasterised from the label file into {row.mask}: {row.labels}"
    return row.mask.name, str(row.mask)


class PairingTable(QTableWidget):
    """Read-only rows of `PairRow`; the full paths and messages are in the tooltips."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        style_record_table(self, CHECK_COLUMN, QAbstractItemView.SelectionMode.NoSelection)
        self._rows: list[PairRow] = []
        self._fit_height()

    def set_rows(self, rows: list[PairRow]) -> None:
        self._rows = list(rows)
        self.setRowCount(len(rows))
        for index, row in enumerate(rows):
            text, color = check_text(row)
            cells = (
                (row.image.name, str(row.image)),
                _mask_cell(row),
                (row.size, row.size),
                (text, row.problem or row.warning or "The image and its mask line up."),
            )
            for column, (shown, tooltip) in enumerate(cells):
                item = QTableWidgetItem(shown)
                item.setToolTip(tooltip)
                if column == CHECK_COLUMN:
                    item.setForeground(QBrush(QColor(color)))
                self.setItem(index, column, item)
        self._fit_height()

    def _fit_height(self) -> None:
        """Tall enough for a few rows (it scrolls beyond), so the settings below stay in view."""
        shown = min(max(self.rowCount(), VISIBLE_ROWS[0]), VISIBLE_ROWS[1])
        row_height = self.verticalHeader().defaultSectionSize()
        self.setFixedHeight(
            self.horizontalHeader().sizeHint().height() + shown * row_height + 2 * self.frameWidth()
        )

    def rows(self) -> list[PairRow]:
        return list(self._rows)

    def check_texts(self) -> list[str]:
        """What the Check column says, row by row."""
        return [self.item(row, CHECK_COLUMN).text() for row in range(self.rowCount())]
