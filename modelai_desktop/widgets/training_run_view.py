"""A training run as it happens: its job, progress with Stop, time estimates, curves and sample.

The Train page feeds it the worker's events; it only displays them (a worker never touches a
widget). The bar and its one "left" time are the whole run's: epochs done plus the share of the
current epoch, and the time left at the pace of this run so far. The time per epoch comes from the
first batches' rate, then from each finished epoch.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from engine.progress import EpochEvent, ProgressEvent
from modelai_desktop.widgets.loss_plot import EpochValues, LossPlot
from modelai_desktop.widgets.model_details import metric_lines
from modelai_desktop.widgets.progress_panel import ProgressPanel, RunProgress, format_duration
from modelai_desktop.widgets.sample_view import SampleView

STOP_TOOLTIP = (
    "Stop after the current batch. The checkpoint of the last finished epoch stays, and Resume "
    "continues from it."
)
IDLE_TEXT = "No training has run yet in this session."
TRAIN_SHARE = 0.8  # of an epoch spent training rather than validating, until an epoch shows the real one
MIN_ETA_FRACTION = 0.002  # of the run done in this session before its pace says anything


class TrainingRunView(QWidget):
    """The right half of the Train page.

    Signals:
        stop_requested(): the user pressed Stop.
    """

    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._epochs_total = 0
        self._batches = {"train": 0, "validate": 0}
        self._started_at = 0.0
        self._start_fraction: float | None = None
        self.measured = ""
        self.job_label = QLabel(IDLE_TEXT)
        self.job_label.setObjectName("sectionTitle")
        self.job_label.setWordWrap(True)
        self.progress_panel = ProgressPanel()
        self.progress_panel.cancel_requested.connect(self.stop_requested)
        self.estimate_label = QLabel()
        self.estimate_label.setToolTip("Measured on this run: the time per epoch and for all epochs left")
        self.loss_plot = LossPlot()
        self.sample_view = SampleView()
        self.metrics_label = QLabel()
        self.metrics_label.setWordWrap(True)
        self.metrics_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        sample_box = QGroupBox("Sample prediction")
        sample_row = QHBoxLayout(sample_box)
        sample_row.addWidget(self.sample_view)
        sample_row.addWidget(self.metrics_label, 1)
        column = QVBoxLayout(self)
        column.setContentsMargins(8, 0, 0, 0)
        column.addWidget(self.job_label)
        column.addWidget(self.progress_panel)
        column.addWidget(self.estimate_label)
        column.addWidget(self.loss_plot, 1)
        column.addWidget(sample_box)

    def start(self, text: str, epochs: int, history: list[EpochValues]) -> None:
        """A run begins (``history``: the epochs a resumed run has already done)."""
        self._epochs_total = epochs
        self._batches = {"train": 0, "validate": 0}
        self._started_at = time.monotonic()
        self._start_fraction = None
        self.job_label.setText(text)
        self.loss_plot.show_history(history)
        self.sample_view.clear()
        self.metrics_label.setText("")
        self.estimate_label.setText("")
        self.progress_panel.start("Starting…")
        self.progress_panel.cancel_button.setText("Stop")
        self.progress_panel.cancel_button.setToolTip(STOP_TOOLTIP)

    def show_status(self, text: str) -> None:
        """What the job is (``Job 4: segmentation training``) or how it ended."""
        self.job_label.setText(text)

    def show_waiting(self, text: str) -> None:
        """The job waits for another one (the runner's ``Waiting for job N…`` message)."""
        self.progress_panel.show_message(text)

    def show_progress(self, event: ProgressEvent) -> None:
        self.progress_panel.show_progress(event, self.run_progress(event))
        if event.stage == "train" and event.epoch and event.loss is not None:
            self.loss_plot.add_batch_loss(event.epoch, event.done, event.total, event.loss)
            if event.epoch == 1 and event.rate:
                self._show_estimate(event.total / event.rate, "from the first batches")

    def show_epoch(self, event: EpochEvent) -> None:
        self.loss_plot.add_epoch(event)
        if event.sample is not None:
            self.sample_view.show_sample(event.sample, event.epoch)
        best = " (best so far)" if event.is_best else ""
        losses = f"training loss {event.train_loss:.4f}"
        if event.val_loss is not None:
            losses += f", validation loss {event.val_loss:.4f}"
        lines = [f"<b>Epoch {event.epoch} of {event.epochs}</b>{best}", losses, *metric_lines(event.metrics)]
        self.metrics_label.setText("<br>".join(lines))
        self._show_estimate(event.duration_s, "measured")

    def finish(self, status: str, outcome: str) -> None:
        """The run ended: ``status`` for the job line, ``outcome`` (Done, Cancelled…) for the bar."""
        self.job_label.setText(status)
        self.progress_panel.finish(outcome)

    def run_progress(self, event: ProgressEvent) -> RunProgress | None:
        """The whole run's share done and time left, from a training or validation step's progress."""
        if event.stage not in self._batches or not event.epoch or not self._epochs_total or event.total <= 0:
            return None
        self._batches[event.stage] = event.total
        train, validate = self._batches["train"], self._batches["validate"]
        train_share = train / (train + validate) if train and validate else TRAIN_SHARE
        step = min(event.done / event.total, 1.0)
        within = train_share * step if event.stage == "train" else train_share + (1 - train_share) * step
        fraction = min((event.epoch - 1 + within) / self._epochs_total, 1.0)
        if self._start_fraction is None:
            self._start_fraction = fraction
        gained = fraction - self._start_fraction
        elapsed = time.monotonic() - self._started_at
        eta_s = elapsed * (1 - fraction) / gained if gained >= MIN_ETA_FRACTION else None
        return RunProgress(fraction, eta_s)

    def _show_estimate(self, epoch_seconds: float, how: str) -> None:
        self.measured = f"About {format_duration(epoch_seconds)} per epoch ({how})."
        self.estimate_label.setText(self.measured)
