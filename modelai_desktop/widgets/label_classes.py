"""The classes a person paints: a list of names and colours, with add, rename, recolour and delete.

A class's id is its row, so keys 1-9 pick the first nine and the saved mask holds the row numbers.
Renaming is done in place (double-click or F2). Deleting asks first, because the class's pixels go
with it; the question and the colour chooser are dialogs opened from plain slots, never from a
coroutine, and they are attributes (``confirm``, ``choose_color``) so a test can answer them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QGridLayout,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from engine.labels.store import LabelClass
from engine.training.segmentation import default_color

MAX_CLASSES = 254
SWATCH = 14


def ask_yes_no(parent: QWidget, text: str) -> bool:
    answer = QMessageBox.question(parent, "Delete class", text)
    return answer == QMessageBox.StandardButton.Yes


def ask_color(parent: QWidget, current: str) -> str | None:
    color = QColorDialog.getColor(QColor(current), parent, "Class colour")
    return color.name() if color.isValid() else None


class ClassList(QWidget):
    """The class list and its buttons.

    Signals:
        classes_changed(): a class was added, renamed or recoloured.
        class_deleted(int): the class with this id was deleted (after the user confirmed).
        current_changed(int): the class to paint with.
        from_model_requested(): the user wants the classes of an existing model.
    """

    classes_changed = Signal()
    class_deleted = Signal(int)
    current_changed = Signal(int)
    from_model_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.confirm: Callable[[str], bool] = lambda text: ask_yes_no(self, text)
        self.choose_color: Callable[[str], str | None] = lambda current: ask_color(self, current)
        self.pixel_counts: Callable[[], dict[int, int]] = dict
        self.list = QListWidget()
        self.list.setEditTriggers(
            QListWidget.EditTrigger.DoubleClicked | QListWidget.EditTrigger.EditKeyPressed
        )
        self.list.currentRowChanged.connect(self._on_row_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        buttons = QGridLayout()
        for index, (text, tip, slot) in enumerate(
            (
                ("Add", "Add a class", self.add_class),
                ("Colour…", "Change the selected class's colour", self.recolor_current),
                ("Delete…", "Delete the selected class and its labels", self.delete_current),
                ("From model…", "Take the classes of an existing model", self.from_model_requested.emit),
            )
        ):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button, index // 2, index % 2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(buttons)

    def classes(self) -> list[LabelClass]:
        return [
            LabelClass(item.text(), item.data(Qt.ItemDataRole.UserRole))
            for item in (self.list.item(row) for row in range(self.list.count()))
        ]

    def set_classes(self, classes: Sequence[LabelClass]) -> None:
        """Replaces the list (no signal but ``current_changed``), keeping the current row when it exists."""
        row = max(0, self.list.currentRow())
        self.list.blockSignals(True)
        self.list.clear()
        for label in classes:
            self.list.addItem(self._item(label))
        self.list.blockSignals(False)
        if classes:
            self.select(min(row, len(classes) - 1))

    def current(self) -> int:
        return self.list.currentRow()

    def select(self, class_id: int) -> bool:
        """Makes ``class_id`` the class to paint with; False when there is no such class."""
        if not 0 <= class_id < self.list.count():
            return False
        self.list.setCurrentRow(class_id)
        self.current_changed.emit(class_id)
        return True

    def add_class(self, name: str | None = None, color: str | None = None) -> None:
        count = self.list.count()
        if count >= MAX_CLASSES:
            return
        label = LabelClass(name or f"class {count + 1}", color or default_color(count))
        self.list.addItem(self._item(label))
        self.select(count)
        self.classes_changed.emit()

    def rename(self, class_id: int, name: str) -> None:
        self.list.item(class_id).setText(name)

    def recolor_current(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        color = self.choose_color(self.classes()[row].color)
        if color:
            item = self.list.item(row)
            item.setData(Qt.ItemDataRole.UserRole, color)
            item.setIcon(_swatch(color))
            self.classes_changed.emit()

    def delete_current(self) -> bool:
        """Deletes the selected class after asking; its pixels become unlabelled, later ids move down."""
        row = self.list.currentRow()
        if row < 0:
            return False
        name = self.classes()[row].name
        pixels = self.pixel_counts().get(row, 0)
        later = " Classes after it move up one place (and one number)." if row < self.list.count() - 1 else ""
        text = f"Delete the class {name!r} and its {pixels} labelled pixels? This cannot be undone.{later}"
        if not self.confirm(text):
            return False
        self.list.takeItem(row)
        self.class_deleted.emit(row)
        if self.list.count():
            self.select(min(row, self.list.count() - 1))
        return True

    def _item(self, label: LabelClass) -> QListWidgetItem:
        item = QListWidgetItem(_swatch(label.color), label.name)
        item.setData(Qt.ItemDataRole.UserRole, label.color)
        item.setFlags(item.flags() | Qt.ItemFlag.ItemIsEditable)
        return item

    def _on_row_changed(self, row: int) -> None:
        if row >= 0:
            self.current_changed.emit(row)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if not item.text().strip():
            item.setText(f"class {self.list.row(item) + 1}")
        self.classes_changed.emit()


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(SWATCH, SWATCH)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)
