"""An inline banner for messages the user should read but need not answer.

Refused files and failed reads are reported here rather than in a modal dialog: a modal `.exec()`
inside a coroutine would nest the event loop under the qasync loop, and a banner does not stop the
user from working with the files that were accepted.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

WARNING_STYLE = (
    "#banner { background: #fff4ce; border: 1px solid #e0c35c; border-radius: 4px; }"
    "#banner QLabel { color: #4d3b00; }"
)


class MessageBanner(QFrame):
    """A dismissible, word-wrapped warning line that stays hidden until `show_message`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        self.setStyleSheet(WARNING_STYLE)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss this message")
        close.clicked.connect(self.hide)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 6)
        layout.addWidget(self.label, 1)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str) -> None:
        self.label.setText(text)
        self.show()

    def text(self) -> str:
        """The message shown now; empty when the banner is hidden."""
        return "" if self.isHidden() else self.label.text()
