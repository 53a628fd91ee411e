"""The jobs of the Label page: training on frozen labels and predicting the whole raster, one at a time.

Both are ordinary jobs (`JobWorker` on the engine's runner, recorded in the job store and listed on
the Jobs page); this object only remembers the running worker, the model the labels last trained,
and which network file the live prediction should use (the checkpoint while training, then the
model).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.jobs.runner import JobOutcome
from engine.jobs.specs import PredictSpec, TrainSpec
from engine.training.config import TrainConfig, checkpoint_path_for
from modelai_desktop.workers import JobRegistry, JobWorker


class LabelJobs(QObject):
    """Signals: epoch(EpochEvent), trained(Path) with the new model, ended(str) with what happened."""

    epoch = Signal(object)
    trained = Signal(object)
    ended = Signal(str)

    def __init__(self, home: Path, jobs: JobRegistry, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._home = home
        self._jobs = jobs
        self.worker: JobWorker | None = None
        self.model_path: Path | None = None
        self.network: Path | None = None

    @property
    def running(self) -> bool:
        return self.worker is not None

    def use_model(self, model: Path | None) -> None:
        """The model trained on these labels before (None for a raster without one)."""
        self.model_path = self.network = model

    def train(self, config: TrainConfig) -> JobWorker:
        """Starts a training job; its checkpoint drives the live prediction until the model is saved."""
        self.network = checkpoint_path_for(config)
        worker = self._start(JobWorker(TrainSpec(config), self._home))
        worker.epoch.connect(self.epoch)
        worker.finished.connect(self._on_trained)
        return worker

    def predict(self, raster: Path) -> JobWorker | None:
        """The normal prediction of the whole raster with the latest model, into the outputs folder."""
        if self.model_path is None or self.running:
            return None
        output_dir = self._home / "outputs" / self.model_path.stem
        worker = self._start(JobWorker(PredictSpec(self.model_path, [raster], output_dir), self._home))
        worker.finished.connect(lambda _outcome: self._end(f"Class map written to {output_dir}."))
        return worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.cancel()

    def _start(self, worker: JobWorker) -> JobWorker:
        worker.failed.connect(lambda message, _details: self._end(message))
        worker.cancelled.connect(self._end)
        self.worker = worker
        self._jobs.add(worker)
        worker.start()
        return worker

    def _on_trained(self, outcome: JobOutcome) -> None:
        assert outcome.training is not None
        self.use_model(outcome.training.model_path)
        self.trained.emit(self.model_path)
        self._end(f"Model saved: {self.model_path.name}. Paint where it is unsure, then train again.")

    def _end(self, message: str) -> None:
        self.worker = None
        self.ended.emit(message)
