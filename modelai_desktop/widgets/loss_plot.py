"""Training curves: loss per epoch and per batch, and the validation metric, drawn with pyqtgraph.

One widget serves a run that is going on (points arrive from the worker's signals) and a run that
is over (`show_history`, from the job store's epochs or a model file's training history), so a
finished job looks exactly as it did while it trained. The metric plot shows what decides the
best epoch: mean and per-class IoU for segmentation, reconstruction error and the calibrated
threshold for anomaly detection.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QColor, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QVBoxLayout, QWidget

from engine.models.metadata import ClassInfo
from engine.training.segmentation import default_color

TRAIN = "train"
VALIDATION = "validation"
BATCH = "batch"
MEAN_IOU = "mean_iou"
CLASS_IOU_PREFIX = "iou/"
ANOMALY_METRICS = ("reconstruction_error", "threshold")
TRAIN_COLOR = "#1f6fb4"
VALIDATION_COLOR = "#e07b1a"
BATCH_COLOR = "#9bbfe0"
MEAN_IOU_COLOR = "#1b1b1b"
LEGEND_ENTRY_WIDTH = 150  # pixels per legend column: as many columns as the plot's width holds
PREFERRED_SIZE = QSize(480, 360)
ANOMALY_COLORS = {"reconstruction_error": "#7a3db8", "threshold": "#c0392b"}
LABELS = {
    TRAIN: "Training loss",
    VALIDATION: "Validation loss",
    BATCH: "Batch loss (smoothed)",
    MEAN_IOU: "Mean IoU",
    "reconstruction_error": "Reconstruction error",
    "threshold": "Anomaly threshold",
}


class EpochValues(Protocol):
    """One epoch's numbers: an EpochEvent, a job store EpochRecord or an `EpochPoint`."""

    @property
    def epoch(self) -> int: ...

    @property
    def train_loss(self) -> float | None: ...

    @property
    def val_loss(self) -> float | None: ...

    @property
    def metrics(self) -> Mapping[str, float]: ...


@dataclass(frozen=True)
class EpochPoint:
    """An epoch from a model file's ``training["history"]`` list (plain JSON dictionaries)."""

    epoch: int
    train_loss: float | None
    val_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> EpochPoint:
        return cls(
            epoch=int(entry["epoch"]),
            train_loss=entry.get("train_loss"),
            val_loss=entry.get("val_loss"),
            metrics=dict(entry.get("metrics") or {}),
        )


DEFAULT_CLASS_NAME = re.compile(r"class (\d+)")


def class_label(recorded: str, classes: Sequence[ClassInfo]) -> tuple[str, str | None]:
    """The name and colour to show for a class as a metric recorded it.

    Metrics keep the class names of the training run; a model's classes may have been named (or
    renamed) since. A recorded name that is the engine's default ``class N`` shows as the model's
    class N, so curves and legends say "water", not "class 3". Unknown names stay as recorded.
    """
    by_name = {info.name: info for info in classes}
    by_id = {info.id: info for info in classes}
    default = DEFAULT_CLASS_NAME.fullmatch(recorded)
    info = by_name.get(recorded) or (by_id.get(int(default.group(1))) if default else None)
    return (info.name, info.color) if info is not None else (recorded, None)


def plotted_metrics(metrics: Mapping[str, float]) -> list[str]:
    """The metrics worth a curve, mean IoU before per-class IoU (stored metrics come sorted by name),
    or the anomaly error and threshold."""
    per_class = [name for name in metrics if name.startswith(CLASS_IOU_PREFIX)]
    fixed = [name for name in (MEAN_IOU, *ANOMALY_METRICS) if name in metrics]
    return fixed[:1] + per_class + fixed[1:] if MEAN_IOU in metrics else per_class + fixed


class LossPlot(QWidget):
    """Two stacked plots sharing the epoch axis: losses above, the validation metric below."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._classes: list[ClassInfo] = []
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        self._curves: dict[str, pg.PlotDataItem] = {}
        # Legends go below the plots: inside, they hide the curves (one per class for IoU).
        loss_view, self.loss_plot = _plot_area("Loss", "loss")
        metric_view, self.metric_plot = _plot_area("Validation metric", "")
        self.metric_plot.setXLink(self.loss_plot)
        self._add_curve(self.loss_plot, BATCH, BATCH_COLOR, width=1, symbol=None)
        self._add_curve(self.loss_plot, TRAIN, TRAIN_COLOR, width=2)
        self._add_curve(self.loss_plot, VALIDATION, VALIDATION_COLOR, width=2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(loss_view, 1)
        layout.addWidget(metric_view, 1)

    def sizeHint(self) -> QSize:
        """A modest wish (the plots grow into any space given), so a scroll area around it does not
        grow taller than the window from pyqtgraph's large default hints."""
        return PREFERRED_SIZE

    def resizeEvent(self, event: QResizeEvent) -> None:
        """Lays the legends out in as many columns as the width holds, so no entry is cut off."""
        super().resizeEvent(event)
        columns = max(1, event.size().width() // LEGEND_ENTRY_WIDTH)
        for plot in (self.loss_plot, self.metric_plot):
            if plot.legend.columnCount != columns:
                plot.legend.setColumnCount(columns)

    def set_classes(self, classes: Sequence[ClassInfo]) -> None:
        """The model's classes: per-class curves show their names and colours (those drawn already too)."""
        self._classes = list(classes)
        per_class = [name for name in self._curves if name.startswith(CLASS_IOU_PREFIX)]
        for index, name in enumerate(per_class):
            curve = self._curves[name]
            label, color = self._class_style(name, index)
            self.metric_plot.legend.removeItem(curve)
            curve.opts["name"] = label
            curve.setPen(pg.mkPen(QColor(color), width=1.5, style=Qt.PenStyle.DashLine))
            self.metric_plot.legend.addItem(curve, label)

    def _class_style(self, metric: str, index: int) -> tuple[str, str]:
        label, color = class_label(metric.removeprefix(CLASS_IOU_PREFIX), self._classes)
        return label, color or default_color(index)

    def clear(self) -> None:
        """Forgets every point and every metric curve, for a new run."""
        for name in list(self._curves):
            if name in (TRAIN, VALIDATION, BATCH):
                self._points[name] = ([], [])
                self._curves[name].setData([], [])
            else:
                self.metric_plot.removeItem(self._curves.pop(name))
                self._points.pop(name)
        self.metric_plot.setTitle("Validation metric")
        self.metric_plot.setLabel("left", "")

    def add_batch_loss(self, epoch: int, done: int, total: int, loss: float) -> None:
        """A smoothed training loss after ``done`` of ``total`` batches of (1-based) ``epoch``."""
        self._append(BATCH, epoch - 1 + done / max(total, 1), loss)

    def add_epoch(self, values: EpochValues) -> None:
        """The end of an epoch: its losses and its plotted metrics, each one point at x = epoch."""
        if values.train_loss is not None:
            self._append(TRAIN, values.epoch, values.train_loss)
        if values.val_loss is not None:
            self._append(VALIDATION, values.epoch, values.val_loss)
        for name in plotted_metrics(values.metrics):
            if name not in self._curves:
                self._add_metric_curve(name)
            self._append(name, values.epoch, values.metrics[name])

    def show_history(self, epochs: Iterable[EpochValues]) -> None:
        """Replaces the curves by a finished run's epochs (a job's EpochRecords, a model's history)."""
        self.clear()
        for values in epochs:
            self.add_epoch(values)

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The plotted x and y of a curve: ``train``, ``validation``, ``batch`` or a metric name."""
        xs, ys = self._points.get(name, ([], []))
        return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)

    def metric_names(self) -> list[str]:
        """The metrics that have a curve, in the order they appeared."""
        return [name for name in self._curves if name not in (TRAIN, VALIDATION, BATCH)]

    def _add_curve(
        self,
        plot: pg.PlotItem,
        name: str,
        color: str,
        width: float,
        symbol: str | None = "o",
        style: Qt.PenStyle = Qt.PenStyle.SolidLine,
        label: str | None = None,
    ) -> None:
        pen = pg.mkPen(QColor(color), width=width, style=style)
        options: dict[str, Any] = {"pen": pen, "name": label or LABELS.get(name, name)}
        if symbol:
            options.update(symbol=symbol, symbolSize=6, symbolBrush=QColor(color), symbolPen=pen)
        curve = plot.plot([], [], antialias=True, **options)
        self._curves[name] = curve
        self._points[name] = ([], [])

    def _add_metric_curve(self, name: str) -> None:
        if name == MEAN_IOU or name.startswith(CLASS_IOU_PREFIX):
            self.metric_plot.setTitle("Validation IoU")
            self.metric_plot.setLabel("left", "IoU")
            self.metric_plot.setYRange(0, 1, padding=0.02)
        else:
            self.metric_plot.setTitle("Reconstruction error and anomaly threshold")
            self.metric_plot.setLabel("left", "error")
            self.metric_plot.enableAutoRange(axis="y")
        if name == MEAN_IOU:
            self._add_curve(self.metric_plot, name, MEAN_IOU_COLOR, width=2.5)
        elif name in ANOMALY_COLORS:
            self._add_curve(self.metric_plot, name, ANOMALY_COLORS[name], width=2)
        else:
            index = sum(other.startswith(CLASS_IOU_PREFIX) for other in self._curves)
            label, color = self._class_style(name, index)
            dash = Qt.PenStyle.DashLine
            self._add_curve(self.metric_plot, name, color, width=1.5, symbol=None, style=dash, label=label)

    def _append(self, name: str, x: float, y: float) -> None:
        xs, ys = self._points[name]
        if xs and x <= xs[-1]:
            cut = next(index for index, value in enumerate(xs) if value >= x)
            del xs[cut:], ys[cut:]
        xs.append(float(x))
        ys.append(float(y))
        self._curves[name].setData(xs, ys)


def _plot_area(title: str, left_label: str) -> tuple[pg.GraphicsLayoutWidget, pg.PlotItem]:
    """A white plot with grid and axis titles, and its legend below it."""
    view = pg.GraphicsLayoutWidget()
    view.setBackground("w")
    view.setMinimumHeight(70)
    plot = view.addPlot(row=0, col=0)
    plot.setTitle(title, color="#333333", size="10pt")
    plot.setLabel("bottom", "epoch")
    plot.setLabel("left", left_label)
    plot.showGrid(x=True, y=True, alpha=0.25)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    for axis in ("left", "bottom"):
        plot.getAxis(axis).setTextPen("#444444")
        plot.getAxis(axis).setPen("#888888")
    legend = pg.LegendItem(labelTextColor="#333333", brush=pg.mkBrush(255, 255, 255, 210))
    view.addItem(legend, row=1, col=0)
    view.ci.layout.setRowStretchFactor(0, 1)
    view.ci.layout.setRowStretchFactor(1, 0)
    legend.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
    plot.legend = legend
    return view, plot
