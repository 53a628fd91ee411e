"""A drop area for files and folders, with buttons for those who prefer dialogs.

The Train page has one for images and one for masks. Folders are kept as folders (the engine
expands them when it reads them), so a folder the user refills is read afresh at the next check.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDragLeaveEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from modelai_desktop import file_dialogs

IDLE_STYLE = "#dropArea { border: 2px dashed palette(mid); border-radius: 6px; background: palette(base); }"
HOVER_STYLE = (
    "#dropArea { border: 2px dashed palette(highlight); border-radius: 6px;"
    " background: palette(alternate-base); }"
)
HINT_STYLE = "color: palette(dark);"
MAX_NAMES_SHOWN = 3


def describe_paths(paths: Sequence[Path]) -> str:
    """``scene1.tif, scene2.tif and 3 more`` / ``folder images/``: what the area holds, in one line."""
    names = [f"{path.name}/" if path.is_dir() else path.name for path in paths]
    if len(names) <= MAX_NAMES_SHOWN:
        return ", ".join(names)
    return f"{', '.join(names[:MAX_NAMES_SHOWN])} and {len(names) - MAX_NAMES_SHOWN} more"


class FileDropArea(QFrame):
    """Holds a list of files and folders; ``paths_changed(list)`` is emitted whenever it changes.

    The hint and the names wrap, so the area's height follows its width (the default Preferred
    size policy; a Maximum one capped it at the unwrapped height and cut the text off).
    """

    paths_changed = Signal(list)

    def __init__(
        self,
        title: str,
        hint: str,
        parent: QWidget | None = None,
        file_filter: str = file_dialogs.RASTER_FILTER,
    ) -> None:
        super().__init__(parent)
        self._file_filter = file_filter
        self.setObjectName("dropArea")
        self.setStyleSheet(IDLE_STYLE)
        self.setAcceptDrops(True)
        self._title = title
        self._paths: list[Path] = []
        self.title_label = QLabel(f"<b>{title}</b>")
        self.summary = QLabel(hint)
        self.summary.setWordWrap(True)
        self.summary.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        # A long file name (one word) must not widen the area past its column: it is cut at the
        # edge instead, and the tooltip names every path in full.
        self.summary.setSizePolicy(QSizePolicy.Policy.Ignored, self.summary.sizePolicy().verticalPolicy())
        self._hint = hint
        # Tool buttons are as wide as their text (push buttons are at least 80 px): two areas side by
        # side then fit the Train page's setup column at 1024 x 700 without being cut on the right.
        files_button = QToolButton()
        files_button.setText("Files…")
        files_button.setToolTip(f"Choose {title.lower()} files")
        files_button.clicked.connect(self.choose_files)
        folder_button = QToolButton()
        folder_button.setText("Folder…")
        folder_button.setToolTip(f"Choose a folder of {title.lower()}")
        folder_button.clicked.connect(self.choose_folder)
        self.clear_button = QToolButton()
        self.clear_button.setText("✕")
        self.clear_button.setAutoRaise(True)
        self.clear_button.setToolTip(f"Forget the {title.lower()} (files stay on disk)")
        self.clear_button.clicked.connect(lambda: self.set_paths([]))
        title_row = QHBoxLayout()
        title_row.setContentsMargins(0, 0, 0, 0)
        title_row.addWidget(self.title_label, 1)
        title_row.addWidget(self.clear_button)
        buttons = QHBoxLayout()
        buttons.setContentsMargins(0, 0, 0, 0)
        buttons.addWidget(files_button)
        buttons.addWidget(folder_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(10, 6, 6, 8)
        layout.setSpacing(4)
        layout.addLayout(title_row)
        layout.addWidget(self.summary, 1)
        layout.addLayout(buttons)
        self._refresh()

    def paths(self) -> list[Path]:
        return list(self._paths)

    def set_paths(self, paths: Sequence[Path]) -> None:
        self._paths = list(dict.fromkeys(Path(path) for path in paths))
        self._refresh()
        self.paths_changed.emit(self.paths())

    def add_paths(self, paths: Sequence[Path]) -> None:
        self.set_paths([*self._paths, *paths])

    def choose_files(self) -> None:
        """A file dialog opened from a plain slot (never inside a coroutine)."""
        paths = file_dialogs.open_files(self, f"Choose {self._title.lower()}", self._file_filter)
        if paths:
            self.add_paths(paths)

    def choose_folder(self) -> None:
        folder = file_dialogs.existing_folder(self, f"Choose a folder of {self._title.lower()}")
        if folder:
            self.add_paths([folder])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._accept(event):
            self.setStyleSheet(HOVER_STYLE)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self._accept(event)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        self.setStyleSheet(IDLE_STYLE)

    def dropEvent(self, event: QDropEvent) -> None:
        self.setStyleSheet(IDLE_STYLE)
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.add_paths(paths)

    def _accept(self, event: QDragEnterEvent | QDragMoveEvent) -> bool:
        if any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()
            return True
        event.ignore()
        return False

    def _refresh(self) -> None:
        self.summary.setText(describe_paths(self._paths) if self._paths else self._hint)
        self.summary.setStyleSheet("" if self._paths else HINT_STYLE)
        self.summary.setToolTip("\n".join(str(path) for path in self._paths))
        self.clear_button.setEnabled(bool(self._paths))
