"""The Label page's training controls, and how a prediction or its uncertainty is drawn over the raster.

The panel only collects choices and shows state; the page starts the jobs. The two overlay renderers
are plain functions of arrays, so the colours a test checks are the colours the person sees.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QWidget,
)

from engine.labels.training_set import DEFAULT_LABEL_EPOCHS
from modelai_desktop.widgets.label_canvas import class_lut

# "Train for" choices on the Label page: a time budget in seconds, or None to train the given epochs.
LABEL_TRAIN_FOR: tuple[tuple[str, float | None], ...] = (
    ("Epochs below", None),
    ("1 min", 60.0),
    ("2 min", 120.0),
    ("5 min", 300.0),
)
DEFAULT_LABEL_BUDGET_S = 120.0

OVERLAYS = {
    "Labels only": None,
    "Prediction": "prediction",
    "Unsure here (margin)": "margin",
    "Unsure here (entropy)": "entropy",
}
UNSURE_RGB = (255, 0, 200)
UNSURE_MAX_ALPHA = 230
PREDICTION_ALPHA = 150


def prediction_rgba(classes: np.ndarray, colors: Sequence[str]) -> np.ndarray:
    """Class ids in their class colours, half transparent; 255 (no data) fully transparent."""
    return class_lut(colors, PREDICTION_ALPHA)[classes]


def uncertainty_rgba(uncertainty: np.ndarray) -> np.ndarray:
    """Magenta where the model is unsure, fading to transparent where it is sure."""
    rgba = np.zeros((*uncertainty.shape, 4), dtype=np.uint8)
    rgba[..., :3] = UNSURE_RGB
    rgba[..., 3] = (np.clip(uncertainty, 0, 1) ** 2 * UNSURE_MAX_ALPHA).astype(np.uint8)
    return rgba


class LabelTrainingPanel(QGroupBox):
    """Train on my labels, stop, predict the whole raster, and which overlay to show.

    Signals:
        train_requested(): start a training job on the labels as they are now.
        stop_requested(): stop the running training job after its current batch.
        predict_requested(): predict the whole raster with the latest model.
        overlay_changed(): another overlay was chosen.
    """

    train_requested = Signal()
    stop_requested = Signal()
    predict_requested = Signal()
    overlay_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Model", parent)
        self.epochs = QSpinBox()
        self.epochs.setRange(1, 500)
        self.epochs.setValue(DEFAULT_LABEL_EPOCHS)
        self.epochs.setToolTip(
            "Passes over 128 patches of 64 x 64 pixels each; a small U-Net, a few seconds per epoch on a CPU"
        )
        self.train_for = QComboBox()
        for label, seconds in LABEL_TRAIN_FOR:
            self.train_for.addItem(label, seconds)
        self.train_for.setCurrentIndex(self.train_for.findData(DEFAULT_LABEL_BUDGET_S))
        self.train_for.setToolTip(
            "How long to train: the epochs and learning-rate schedule are planned to end in time"
        )
        self.train_for.currentIndexChanged.connect(
            lambda: self.epochs.setEnabled(self.train_for.currentData() is None)
        )
        self.epochs.setEnabled(False)
        self.continue_box = QCheckBox("Start from the last model")
        self.continue_box.setToolTip("Train again from the previous weights instead of from scratch")
        self.continue_box.setChecked(True)
        self.continue_box.setEnabled(False)
        self.train_button = QPushButton("Train on my labels")
        self.train_button.setToolTip("Start a training job on the labels as they are now (Ctrl+T)")
        self.train_button.clicked.connect(self.train_requested)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.stop_requested)
        self.predict_button = QPushButton("Predict whole raster")
        self.predict_button.setToolTip("Run the latest model over the whole raster (a normal prediction job)")
        self.predict_button.setEnabled(False)
        self.predict_button.clicked.connect(self.predict_requested)
        self.overlay = QComboBox()
        self.overlay.addItems(list(OVERLAYS))
        self.overlay.setToolTip("What to draw under the labels for the part of the raster on screen")
        self.overlay.currentIndexChanged.connect(self.overlay_changed)
        self.state = QLabel("No model yet: paint two classes, then train.")
        self.state.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.train_button, 1)
        buttons.addWidget(self.stop_button)
        layout = QFormLayout(self)
        layout.addRow("Train for", self.train_for)
        layout.addRow("Epochs", self.epochs)
        layout.addRow(self.continue_box)
        layout.addRow(buttons)
        layout.addRow(self.predict_button)
        layout.addRow("Show", self.overlay)
        layout.addRow(self.state)

    def overlay_kind(self) -> str | None:
        """None (labels only), ``prediction``, ``margin`` or ``entropy``."""
        return OVERLAYS[self.overlay.currentText()]

    def set_overlay_kind(self, kind: str | None) -> None:
        self.overlay.setCurrentIndex(list(OVERLAYS.values()).index(kind))

    def set_running(self, running: bool, has_model: bool) -> None:
        """Enables what can be done now: one training at a time, prediction once a model exists."""
        self.train_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        self.predict_button.setEnabled(has_model and not running)
        self.continue_box.setEnabled(has_model and not running)
