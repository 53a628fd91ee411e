"""The progress of a running job: what it does, a bar, its speed, the time left, and a Cancel button.

Shared by the Train and Predict pages, it reads the engine's `ProgressEvent` as it is, so both pages
show progress the same way the terminal does. It only displays; the page that owns the job connects
`cancel_requested` to its worker.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGridLayout, QLabel, QProgressBar, QPushButton, QSizePolicy, QWidget

from engine.progress import ProgressEvent

BAR_RESOLUTION = 1000
STAGE_UNITS = {
    "predict": "tile",
    "train": "training batch",
    "validate": "validation batch",
    "statistics": "batch-norm statistics batch",
}


@dataclass(frozen=True)
class RunProgress:
    """How far a whole run is (0 to 1) and the time it has left, where one step is part of it."""

    fraction: float
    eta_s: float | None


def format_duration(seconds: float | None) -> str:
    """``0:42``, ``12:05`` or ``3:02:10``; an em dash while unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def describe_step(event: ProgressEvent) -> str:
    """One line for the step: ``field.tif: tile 12 of 81`` or ``Epoch 2/10: training batch 5 of 40``."""
    unit = STAGE_UNITS.get(event.stage, event.stage)
    where = f"{unit} {event.done} of {event.total}"
    if event.epoch is not None and event.epochs is not None:
        where = f"Epoch {event.epoch}/{event.epochs}: {where}"
    if event.label:
        where = f"{event.label}: {where}"
    if event.loss is not None and math.isfinite(event.loss):
        where += f", loss {event.loss:.4g}"
    return where


def format_rate(event: ProgressEvent) -> str:
    if event.rate is None or not math.isfinite(event.rate):
        return ""
    return f"{event.rate:.3g} {event.rate_unit}".strip()


class ProgressPanel(QWidget):
    """Idle, it shows the last outcome; `start` turns it into a live bar with a Cancel button.

    Signals:
        cancel_requested(): the user pressed Cancel (the button then waits in "Cancelling…").
    """

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        self.status_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.bar = QProgressBar()
        self.bar.setRange(0, BAR_RESOLUTION)
        self.bar.setTextVisible(True)
        self.rate_label = QLabel()
        self.eta_label = QLabel()
        self.eta_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip("Stop the job at the next tile or batch; partial outputs are removed")
        self.cancel_button.clicked.connect(self._on_cancel)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status_label, 0, 0, 1, 3)
        layout.addWidget(self.bar, 1, 0, 1, 2)
        layout.addWidget(self.cancel_button, 1, 2)
        layout.addWidget(self.rate_label, 2, 0)
        layout.addWidget(self.eta_label, 2, 1)
        layout.setColumnStretch(0, 1)
        layout.setColumnStretch(1, 1)
        self._running = False
        self.finish("")

    @property
    def running(self) -> bool:
        """True between `start` and `finish`."""
        return self._running

    def start(self, text: str) -> None:
        """Shows a job that is starting: an empty busy bar until its first progress event."""
        self._running = True
        self.status_label.setText(text)
        self.status_label.show()
        self.bar.setRange(0, 0)
        self.bar.show()
        self.rate_label.setText("")
        self.eta_label.setText("")
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()

    def show_progress(self, event: ProgressEvent, run: RunProgress | None = None) -> None:
        """Draws one (already throttled) progress event; ``run`` replaces the step's fraction and time
        left by the whole run's (an epoch's batches are a small part of a training run)."""
        if not self._running:
            return
        fraction = event.done / event.total if event.total > 0 else 0.0
        eta_s = event.eta_s
        if run is not None:
            fraction, eta_s = run.fraction, run.eta_s
        self.bar.setRange(0, BAR_RESOLUTION)
        self.bar.setValue(round(min(max(fraction, 0.0), 1.0) * BAR_RESOLUTION))
        self.bar.setFormat(f"{fraction:.0%}")
        if self.cancel_button.isEnabled():
            self.status_label.setText(describe_step(event))
        self.rate_label.setText(format_rate(event))
        self.eta_label.setText(f"{format_duration(eta_s)} left" if eta_s is not None else "")

    def show_message(self, text: str) -> None:
        """A line from the job (``Waiting for job 3…``) in place of the step."""
        self.status_label.setText(text)

    def finish(self, text: str) -> None:
        """Back to idle with the outcome (``Done in 0:12``, ``Cancelled``, ``Failed: …``)."""
        self._running = False
        self.status_label.setText(text)
        self.status_label.setVisible(bool(text))
        self.bar.hide()
        self.rate_label.setText("")
        self.eta_label.setText("")
        self.cancel_button.hide()

    def _on_cancel(self) -> None:
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling…")
        self.status_label.setText("Cancelling: the job stops at the next tile or batch…")
        self.cancel_requested.emit()
