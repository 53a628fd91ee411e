"""A column whose settings scroll while the buttons that act on them stay in view below.

On a short screen (1024 × 700) a page's action button at the end of a long form would need
scrolling to find; here only the form scrolls, vertically, and never sideways.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLayout, QScrollArea, QVBoxLayout, QWidget


def pinned_column(
    content: QWidget, pinned: Sequence[QWidget | QLayout], min_width: int, right_margin: int = 0
) -> QWidget:
    """``content`` in a vertical scroll area, ``pinned`` below it; never narrower than ``min_width``."""
    scroll = QScrollArea()
    scroll.setWidget(content)
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    column = QWidget()
    column.setMinimumWidth(min_width)
    layout = QVBoxLayout(column)
    layout.setContentsMargins(0, 0, right_margin, 0)
    layout.addWidget(scroll, 1)
    for item in pinned:
        if isinstance(item, QLayout):
            layout.addLayout(item)
        else:
            layout.addWidget(item)
    return column
