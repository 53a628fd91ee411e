"""The Models page: the trained models of the data folder and any model file the user opens.

Metadata is read on a read thread, so a folder of large models lists without freezing. Class names
and colours edited here are written back into the model file with
`engine.models.file.update_metadata` (atomically, one save at a time), so prediction outputs use
them from then on. Dialogs (colour, rename, delete) open from plain slots, never in a coroutine.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices, QDragEnterEvent, QDropEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QColorDialog,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError, OutputError
from engine.models.file import update_metadata
from engine.models.metadata import ClassInfo
from modelai_desktop import file_dialogs
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.model_library import (
    MODEL_SUFFIX,
    OPEN_MODEL_FILTER,
    ModelEntry,
    delete_model_files,
    model_files,
    read_entry,
    rename_model_file,
)
from modelai_desktop.pages.onnx_export import OnnxExportAction
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.model_details import TASK_NAMES, ModelDetails

log = logging.getLogger(__name__)

COLUMNS = ("Model", "Task", "Created")
INVALID_TASK = "unreadable"


def color_dialog_title(info: ClassInfo) -> str:
    """The colour dialog's title: the class by its name, with its id when the name is the default."""
    return f"Colour of {info.name}" if info.name.startswith("class ") else f"Colour of class “{info.name}”"


class ModelsPage(QWidget):
    """A list of model files beside the details of the selected one.

    Signals:
        predict_requested(Path): "Predict with this model"; the app routes it to the Predict page.
        status_message(str): one line for the status bar.
    """

    predict_requested = Signal(Path)
    status_message = Signal(str)

    def __init__(self, tasks: BackgroundTasks, home: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self.models_dir = home / "models"
        self._opened: list[Path] = []
        self._entries: list[ModelEntry] = []
        self._save_lock = asyncio.Lock()
        self.setAcceptDrops(True)
        self.banner = MessageBanner()
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        # Names that share a long beginning ("segmentation-scene-2", "-3") differ at the end.
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.currentCellChanged.connect(lambda row, *_: self._show_row(row))
        self.details = ModelDetails()
        self.details.class_table.name_edited.connect(self._on_name_edited)
        self.details.class_table.name_refused.connect(self.banner.show_message)
        self.details.class_table.color_requested.connect(self.choose_class_color)

        title = QLabel("Models")
        title.setObjectName("sectionTitle")
        self.count_label = QLabel()
        open_button = QPushButton("Open model…")
        open_button.setToolTip("Show a model file from another folder (or drop one on this page)")
        open_button.clicked.connect(self.choose_model_file)
        list_header = QHBoxLayout()
        list_header.addWidget(title)
        list_header.addWidget(self.count_label)
        list_header.addStretch(1)
        list_header.addWidget(open_button)
        list_panel = QWidget()
        list_layout = QVBoxLayout(list_panel)
        list_layout.setContentsMargins(0, 0, 0, 0)
        list_layout.addLayout(list_header)
        list_layout.addWidget(self.table)

        self.predict_button = QPushButton("Predict with this model")
        self.predict_button.setToolTip("Open the Predict page with this model chosen")
        self.predict_button.clicked.connect(self._request_prediction)
        self.rename_button = QPushButton("Rename…")
        self.rename_button.clicked.connect(self.ask_rename)
        self.delete_button = QPushButton("Delete…")
        self.delete_button.clicked.connect(self.ask_delete)
        self.show_button = QPushButton("Show file")
        self.show_button.setToolTip("Open the folder that holds the model file")
        self.show_button.clicked.connect(self._show_file)
        self.onnx_export = OnnxExportAction(tasks, self.banner, self._valid_model_path, self)
        self.onnx_export.status_message.connect(self.status_message)
        buttons = QHBoxLayout()
        buttons.addWidget(self.predict_button)
        buttons.addWidget(self.onnx_export.button)
        buttons.addStretch(1)
        for button in (self.rename_button, self.delete_button, self.show_button):
            buttons.addWidget(button)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setWidget(self.details)
        details_panel = QWidget()
        details_layout = QVBoxLayout(details_panel)
        details_layout.setContentsMargins(8, 0, 0, 0)
        details_layout.addWidget(scroll, 1)
        details_layout.addLayout(buttons)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(list_panel)
        splitter.addWidget(details_panel)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 830])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)
        self._update_buttons()

    def entries(self) -> list[ModelEntry]:
        """The listed models, in list order."""
        return list(self._entries)

    def current_entry(self) -> ModelEntry | None:
        row = self.table.currentRow()
        return self._entries[row] if 0 <= row < len(self._entries) else None

    def refresh(self) -> asyncio.Task[None]:
        """Re-reads the model folder in the background (after training, renaming, deleting)."""
        return self._tasks.start(self.reload(), name="list-models")

    async def reload(self, select: Path | None = None) -> None:
        """Lists the models with their metadata, keeping (or moving to) the selected one."""
        current = self.current_entry()
        wanted = select or (current.path if current else None)
        paths = await self._tasks.run_blocking(model_files, self.models_dir, list(self._opened))
        entries = [await self._tasks.run_blocking(read_entry, path) for path in paths]
        self._entries = entries
        self.table.blockSignals(True)
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            self._fill_row(row, entry)
        self.table.blockSignals(False)
        rows = [index for index, entry in enumerate(entries) if entry.path == wanted]
        self.table.setCurrentCell(rows[0] if rows else (0 if entries else -1), 0)
        self._show_row(self.table.currentRow())
        count = len(entries)
        self.count_label.setText(f"{count} model{'s' if count != 1 else ''}" if count else "none yet")

    def open_model(self, path: Path) -> asyncio.Task[None]:
        """Lists a model file from anywhere and selects it."""
        path = path.expanduser().resolve()
        if path not in self._opened:
            self._opened.append(path)
        return self._tasks.start(self.reload(select=path), name="open-model")

    def choose_model_file(self) -> None:
        path = file_dialogs.open_file(self, "Open a model", OPEN_MODEL_FILTER)
        if path:
            self.open_model(path)

    def choose_class_color(self, class_id: int) -> None:
        """The colour dialog: a plain slot, because the dialog's modal loop must not run in a coroutine."""
        classes = self.details.class_table.classes()
        info = next(item for item in classes if item.id == class_id)
        color = QColorDialog.getColor(QColor(info.color), self, color_dialog_title(info))
        if color.isValid():
            self.set_class_color(class_id, color.name())

    def set_class_color(self, class_id: int, color: str) -> asyncio.Task[None]:
        """Gives a class of the selected model a new ``#rrggbb`` colour and saves it to the file."""
        classes = [
            ClassInfo(info.id, info.name, color if info.id == class_id else info.color)
            for info in self.details.class_table.classes()
        ]
        return self._save_classes(classes)

    def rename_model(self, path: Path, new_name: str) -> Path:
        """Renames a model and its checkpoints (`rename_model_file`); an opened file stays listed."""
        target = rename_model_file(path, new_name)
        self._opened = [target if item == path else item for item in self._opened]
        return target

    def delete_model(self, path: Path) -> None:
        """Moves a model and its checkpoints to the trash, or deletes them (`delete_model_files`)."""
        delete_model_files(path)
        self._opened = [item for item in self._opened if item != path]

    def ask_rename(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        name, accepted = QInputDialog.getText(self, "Rename model", "New name:", text=entry.path.stem)
        if not accepted or name.strip() == entry.path.stem:
            return
        try:
            target = self.rename_model(entry.path, name)
        except OutputError as exc:
            self.banner.show_message(str(exc))
            return
        self.status_message.emit(f"Renamed {entry.path.name} to {target.name}.")
        self._tasks.start(self.reload(select=target), name="list-models")

    def ask_delete(self) -> None:
        entry = self.current_entry()
        if entry is None:
            return
        answer = QMessageBox.question(
            self,
            "Delete model",
            f"Delete the model {entry.path.name} and its training checkpoints?\n\nThey go to the trash"
            " where the system has one; predictions made with the model are kept.",
        )
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.delete_model(entry.path)
        except OutputError as exc:
            self.banner.show_message(str(exc))
            return
        self.status_message.emit(f"Deleted {entry.path.name}.")
        self.refresh()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh()

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(url.toLocalFile().endswith(MODEL_SUFFIX) for url in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        models = [path for path in paths if path.suffix == MODEL_SUFFIX]
        if not models:
            event.ignore()
            return
        event.acceptProposedAction()
        for path in models:
            self.open_model(path)

    def _fill_row(self, row: int, entry: ModelEntry) -> None:
        metadata = entry.metadata
        cells = (
            entry.path.stem,
            TASK_NAMES.get(metadata.task, metadata.task) if metadata else INVALID_TASK,
            metadata.created[:10] if metadata else "",
        )
        for column, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(f"{entry.path.name}\n{entry.path.parent}" if metadata else entry.error)
            self.table.setItem(row, column, item)

    def _show_row(self, row: int) -> None:
        entry = self._entries[row] if 0 <= row < len(self._entries) else None
        if entry is None:
            self.details.show_nothing()
        elif entry.metadata is None:
            self.details.show_error(entry.path, entry.error)
        else:
            self.details.show_model(entry.path, entry.metadata)
        self._update_buttons()

    def _update_buttons(self) -> None:
        entry = self.current_entry()
        for button in (self.rename_button, self.delete_button, self.show_button):
            button.setEnabled(entry is not None)
        for button in (self.predict_button, self.onnx_export.button):
            button.setEnabled(self._valid_model_path() is not None)

    def _valid_model_path(self) -> Path | None:
        """The selected model's file, if its metadata could be read."""
        entry = self.current_entry()
        return entry.path if entry is not None and entry.metadata is not None else None

    def _request_prediction(self) -> None:
        entry = self.current_entry()
        if entry is not None:
            self.predict_requested.emit(entry.path)

    def _show_file(self) -> None:
        entry = self.current_entry()
        if entry is not None and not QDesktopServices.openUrl(QUrl.fromLocalFile(str(entry.path.parent))):
            self.status_message.emit(f"Could not open the folder; the model is {entry.path}")

    def _on_name_edited(self, _class_id: int, _name: str) -> None:
        self._save_classes(self.details.class_table.classes())

    def _save_classes(self, classes: list[ClassInfo]) -> asyncio.Task[None]:
        entry = self.current_entry()
        if entry is None:
            raise RuntimeError("No model is selected: the class table is empty.")
        return self._tasks.start(self._write_classes(entry.path, classes), name="save-classes")

    async def _write_classes(self, path: Path, classes: list[ClassInfo]) -> None:
        """One save at a time, so two quick edits cannot overwrite each other's file."""
        async with self._save_lock:
            try:
                metadata = await self._tasks.run_blocking(
                    functools.partial(update_metadata, path, classes=classes)
                )
            except EngineError as exc:
                self.banner.show_message(str(exc))
                await self.reload()
                return
        self._entries = [
            ModelEntry(path, metadata) if entry.path == path else entry for entry in self._entries
        ]
        current = self.current_entry()
        if current is not None and current.path == path:
            self.details.show_model(path, metadata)
        self.status_message.emit(f"Saved the classes of {path.name}.")
