"""What a model file says about itself: task, bands, classes, training data, metrics and loss curve.

Everything shown comes from the file's metadata (`engine.models.file.read_metadata`), so a model
received from a colleague shows how it was trained as well as one trained here. Class names are
edited in place and colours are picked by double-clicking their swatch; the page saves both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from engine.models.metadata import (
    ClassInfo,
    ModelMetadata,
    kept_validation,
    recomputed_note,
    repeated_class_names,
)
from modelai_desktop.widgets.loss_plot import CLASS_IOU_PREFIX, EpochPoint, LossPlot, class_label
from modelai_desktop.widgets.progress_panel import format_duration

ID_COLUMN, COLOR_COLUMN, NAME_COLUMN = range(3)
TASK_NAMES = {"segmentation": "Segmentation", "anomaly": "Anomaly detection"}


LOSS_PLOT_HEIGHT = 380
NO_MODEL_TEXT = "Select a model in the list, or open a model file."


METRIC_NAMES = {
    "mean_iou": "Mean IoU",
    "mean_f1": "Mean F1",
    "pixel_accuracy": "Pixel accuracy",
    "reconstruction_error": "Reconstruction error",
    "threshold": "Anomaly threshold",
}


def metric_lines(metrics: Mapping[str, float], classes: Sequence[ClassInfo] = ()) -> list[str]:
    """The metrics worth reading, best known names first, as ``Name value`` lines; per-class values
    under the model's class names (see `class_label`)."""
    lines = [f"{label} {metrics[name]:.4g}" for name, label in METRIC_NAMES.items() if name in metrics]
    per_class = [name for name in metrics if name.startswith(CLASS_IOU_PREFIX)]
    if per_class:
        lines.append(
            "IoU per class: "
            + ", ".join(
                f"{class_label(name.removeprefix(CLASS_IOU_PREFIX), classes)[0]} {metrics[name]:.3f}"
                for name in per_class
            )
        )
    return lines


def describe_model(path: Path, metadata: ModelMetadata) -> str:
    """Rich text: task, architecture, bands and classes (with their colours) or the threshold."""
    bands = ", ".join(map(str, metadata.bands))
    lines = [
        f"<b>{path.name}</b>",
        f"{TASK_NAMES.get(metadata.task, metadata.task)} · {metadata.architecture}"
        f" · patch {metadata.patch_size}",
        f"Bands {bands} of {metadata.input_dtype}",
    ]
    if metadata.classes:
        chips = " ".join(f"<span style='color:{c.color}'>■</span>&nbsp;{c.name}" for c in metadata.classes)
        lines.append(f"Classes: {chips}")
    if metadata.anomaly and "threshold" in metadata.anomaly:
        lines.append(f"Anomaly threshold {float(metadata.anomaly['threshold']):.4g}")
    return "<br>".join(lines)


class ClassTable(QTableWidget):
    """Id, colour swatch and editable name of each class.

    Signals:
        name_edited(int, str): the user renamed a class (its id and the new name).
        name_refused(str): a new name was taken by another class, so the edit was undone; says why.
        color_requested(int): the user double-clicked a class's colour swatch.
    """

    name_edited = Signal(int, str)
    name_refused = Signal(str)
    color_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, 3, parent)
        self.setHorizontalHeaderLabels(("Id", "Colour", "Name"))
        self.verticalHeader().hide()
        self.setShowGrid(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME_COLUMN, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.setToolTip("Double-click a name to rename the class, or a colour to change it.")
        self._classes: list[ClassInfo] = []
        self.itemChanged.connect(self._on_item_changed)
        self.cellDoubleClicked.connect(self._on_double_click)

    def set_classes(self, classes: list[ClassInfo]) -> None:
        self._classes = [ClassInfo(info.id, info.name, info.color) for info in classes]
        self.blockSignals(True)
        self.setRowCount(len(classes))
        for row, info in enumerate(classes):
            identifier = QTableWidgetItem(str(info.id))
            swatch = QTableWidgetItem(info.color)
            swatch.setBackground(QBrush(QColor(info.color)))
            swatch.setForeground(QBrush(QColor("white" if QColor(info.color).lightness() < 140 else "black")))
            name = QTableWidgetItem(info.name)
            for item in (identifier, swatch):
                item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.setItem(row, ID_COLUMN, identifier)
            self.setItem(row, COLOR_COLUMN, swatch)
            self.setItem(row, NAME_COLUMN, name)
        self.blockSignals(False)
        rows_height = sum(self.rowHeight(row) for row in range(len(classes)))
        self.setFixedHeight(self.horizontalHeader().height() + rows_height + 4)

    def classes(self) -> list[ClassInfo]:
        """The classes as shown (names as edited)."""
        return [ClassInfo(info.id, info.name, info.color) for info in self._classes]

    def row_of(self, class_id: int) -> int:
        return next(row for row, info in enumerate(self._classes) if info.id == class_id)

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if item.column() != NAME_COLUMN:
            return
        info = self._classes[item.row()]
        name = item.text().strip()
        taken = repeated_class_names([other.name for other in self._classes if other is not info] + [name])
        if not name or name == info.name or taken:
            self.blockSignals(True)
            item.setText(info.name)
            self.blockSignals(False)
            if taken:
                self.name_refused.emit(
                    f"Another class is already named {name!r}; give each class its own name "
                    "(curves, metrics and legends tell classes apart by name)."
                )
            return
        info.name = name
        self.name_edited.emit(info.id, name)

    def _on_double_click(self, row: int, column: int) -> None:
        if column == COLOR_COLUMN:
            self.color_requested.emit(self._classes[row].id)


class ModelDetails(QWidget):
    """The metadata of one model, in sections; `show_model`, `show_error` or `show_nothing`."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setObjectName("sectionTitle")
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message = QLabel(NO_MODEL_TEXT)
        self.message.setObjectName("placeholder")
        self.message.setWordWrap(True)
        self.fields: dict[str, QLabel] = {}
        info_box = QGroupBox("Model")
        self.info_form = QFormLayout(info_box)
        for name in ("Task", "Network", "Bands", "Patch", "Grid", "Created", "File"):
            label = QLabel()
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.fields[name] = label
            self.info_form.addRow(name, label)
        self.classes_box = QGroupBox("Classes")
        self.class_table = ClassTable()
        classes_layout = QVBoxLayout(self.classes_box)
        classes_layout.addWidget(self.class_table)
        self.anomaly_label = QLabel()
        self.anomaly_label.setWordWrap(True)
        classes_layout.addWidget(self.anomaly_label)
        self.training_box = QGroupBox("Training")
        self.training_label = QLabel()
        self.training_label.setWordWrap(True)
        self.training_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.training_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        QVBoxLayout(self.training_box).addWidget(self.training_label)
        self.loss_plot = LossPlot()
        self.loss_plot.setMinimumHeight(LOSS_PLOT_HEIGHT)

        top = QHBoxLayout()
        top.addWidget(info_box, 1)
        top.addWidget(self.classes_box, 1)
        self.body = QWidget()
        body_layout = QVBoxLayout(self.body)
        body_layout.setContentsMargins(0, 0, 0, 0)
        bottom = QHBoxLayout()
        bottom.addWidget(self.training_box, 2)
        bottom.addWidget(self.loss_plot, 3)
        body_layout.addLayout(top)
        body_layout.addLayout(bottom, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.message)
        layout.addWidget(self.body, 1)
        self.show_nothing()

    def show_nothing(self) -> None:
        self.title.setText("")
        self.message.setText(NO_MODEL_TEXT)
        self.message.show()
        self.body.hide()

    def show_error(self, path: Path, error: str) -> None:
        self.title.setText(path.name)
        self.message.setText(error)
        self.message.show()
        self.body.hide()

    def show_model(self, path: Path, metadata: ModelMetadata) -> None:
        self.title.setText(path.stem)
        self.message.hide()
        self.body.show()
        hyperparameters = ", ".join(f"{name} {value}" for name, value in metadata.hyperparameters.items())
        pixel = (
            f"pixel {metadata.pixel_size[0]:g} × {metadata.pixel_size[1]:g}" if metadata.pixel_size else ""
        )
        self.fields["Task"].setText(TASK_NAMES.get(metadata.task, metadata.task))
        self.fields["Network"].setText(f"{metadata.architecture} ({hyperparameters})")
        self.fields["Bands"].setText(
            f"{', '.join(map(str, metadata.bands))} of {metadata.input_dtype} rasters"
        )
        self.fields["Patch"].setText(f"{metadata.patch_size} × {metadata.patch_size} pixels")
        self.fields["Grid"].setText(", ".join(filter(None, (pixel, metadata.crs or "no CRS"))))
        self.fields["Created"].setText(metadata.created.replace("T", " ") or "unknown")
        self.fields["File"].setText(str(path))
        self.class_table.setVisible(bool(metadata.classes))
        self.class_table.set_classes(metadata.classes)
        anomaly = metadata.anomaly or {}
        self.classes_box.setTitle("Classes" if metadata.classes else "Anomaly threshold")
        self.anomaly_label.setVisible("threshold" in anomaly)
        if "threshold" in anomaly:
            quantile = anomaly.get("quantile")
            source = f" (quantile {quantile:g} of held-out normal pixels)" if quantile is not None else ""
            self.anomaly_label.setText(
                f"Pixels with an error above {anomaly['threshold']:.4g} are anomalies{source}."
            )
        self.training_label.setText(training_text(metadata.training, metadata.classes))
        history = metadata.training.get("history") or []
        self.loss_plot.set_classes(metadata.classes)
        self.loss_plot.show_history(EpochPoint.from_entry(entry) for entry in history)


def training_text(training: Mapping[str, Any], classes: Sequence[ClassInfo] = ()) -> str:
    """A few lines on how a model was trained: epochs, best metric, data, device, time."""
    if not training:
        return "This model file carries no training summary."
    lines = []
    if "epochs_run" in training:
        stopped = " (stopped early)" if training.get("stopped_early") else ""
        lines.append(f"Epochs: {training['epochs_run']} of {training.get('epochs', '?')}{stopped}")
    if training.get("best_metric") is not None:
        monitor = str(training.get("monitor", ""))
        monitor = METRIC_NAMES.get(monitor, monitor)
        lines.append(
            f"Best: {monitor} {training['best_metric']:.4f} at epoch {training.get('best_epoch')}"
            + recomputed_note(training)
        )
    best = kept_validation(training)
    if best is not None:
        lines.extend(metric_lines(best.get("metrics", {}), classes))
    data = training.get("data") or []
    if data:
        names = ", ".join(Path(entry["image"]).name for entry in data[:6])
        more = f" and {len(data) - 6} more" if len(data) > 6 else ""
        lines.append(f"Data: {len(data)} image(s): {names}{more}")
    if training.get("validation"):
        lines.append(f"Validation: {training['validation'].removeprefix('validation: ')}")
    device = training.get("device") or {}
    if device:
        lines.append(f"Device: {device.get('kind', '?').upper()} ({device.get('name', '?')})")
    if training.get("duration_s") is not None:
        lines.append(f"Training time: {format_duration(training['duration_s'])}")
    return "\n".join(lines)
