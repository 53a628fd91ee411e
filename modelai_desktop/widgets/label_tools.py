"""The paint tools as a row of checkable buttons (one checked at a time), with undo and redo."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QButtonGroup, QHBoxLayout, QToolButton, QWidget

TOOL_BUTTONS = (
    ("brush", "Brush", "Paint the selected class (B); click for a dab, drag for a stroke"),
    ("eraser", "Eraser", "Make pixels unlabelled again (E)"),
    ("polygon", "Polygon", "Click the corners, double-click or Enter to fill, Esc to cancel (P)"),
    ("pan", "Pan", "Drag to move the view (H); the middle button pans with any tool"),
)


class ToolBar(QWidget):
    """Signals: tool_changed(str), undo_requested(), redo_requested()."""

    tool_changed = Signal(str)
    undo_requested = Signal()
    redo_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.group = QButtonGroup(self)
        self.buttons: dict[str, QToolButton] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for name, text, tip in TOOL_BUTTONS:
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.setCheckable(True)
            button.clicked.connect(lambda _checked=False, chosen=name: self.tool_changed.emit(chosen))
            self.group.addButton(button)
            self.buttons[name] = button
            layout.addWidget(button)
        for text, tip, signal in (
            ("Undo", "Undo the last stroke (Ctrl+Z)", self.undo_requested),
            ("Redo", "Redo (Ctrl+Shift+Z)", self.redo_requested),
        ):
            button = QToolButton()
            button.setText(text)
            button.setToolTip(tip)
            button.clicked.connect(signal)
            layout.addWidget(button)
        self.show_tool("brush")

    def show_tool(self, name: str) -> None:
        self.buttons[name].setChecked(True)
