"""The job of the Train page: one training at a time, shown on the run view as it happens.

A run is a `JobWorker` (the engine's runner on a QThread): its signals feed the progress bar, the
loss curves and the sample view; Stop asks the engine to stop at the next batch (the last epoch's
checkpoint stays), and a cancelled run is remembered so that Resume can continue it. The page keeps
the data and the settings; this object only knows the running worker and how each end is shown.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.jobs.records import EpochRecord
from engine.jobs.runner import JobOutcome
from engine.jobs.specs import TrainSpec
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.training_run_view import TrainingRunView
from modelai_desktop.workers import JobRegistry, JobWorker

WAITING_PREFIX = "Waiting for job"


class TrainJobs(QObject):
    """Starts, stops and follows the Train page's training jobs.

    Signals:
        model_saved(Path): a training job wrote this model file.
        status_message(str): one line for the status bar.
        ended(): the job ended (succeeded, failed or cancelled); another may start.
    """

    model_saved = Signal(Path)
    status_message = Signal(str)
    ended = Signal()

    def __init__(
        self,
        home: Path,
        jobs: JobRegistry,
        run_view: TrainingRunView,
        banner: MessageBanner,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._home = home
        self._jobs = jobs
        self._run_view = run_view
        self._banner = banner
        self.worker: JobWorker | None = None
        self.resumable_job: int | None = None
        run_view.stop_requested.connect(self.stop)

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, spec: TrainSpec, history: list[EpochRecord], parent_job_id: int | None) -> None:
        """Starts ``spec`` as a new job; ``history`` holds the epochs of the job it resumes, if any."""
        config = spec.config
        worker = JobWorker(spec, self._home, parent_job_id=parent_job_id)
        worker.started.connect(self._on_started)
        worker.progress.connect(self._run_view.show_progress)
        worker.epoch.connect(self._run_view.show_epoch)
        worker.message.connect(self._on_message)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self.worker = worker
        self._jobs.add(worker)
        self.resumable_job = None
        self._banner.hide()
        what = "Resuming" if parent_job_id is not None else "Starting"
        self._run_view.start(f"{what} {config.task} training…", config.epochs, history)
        self._run_view.sample_view.set_classes(config.class_names or [], config.class_colors or [])
        worker.start()

    def stop(self) -> None:
        """Asks the run to stop after the current batch; the last finished epoch's checkpoint stays."""
        if self.worker is not None:
            self.worker.cancel()
            self._run_view.show_status(f"Job {self.worker.job_id}: stopping after the current batch…")

    def _on_started(self, job_id: int) -> None:
        self._run_view.show_status(f"Job {job_id}: {self.worker.spec.config.task} training")

    def _on_message(self, level: str, text: str) -> None:
        if text.startswith(WAITING_PREFIX):
            job = f"Job {self.worker.job_id}" if self.worker and self.worker.job_id else "This job"
            self._run_view.show_status(f"{job} is queued until the running job ends.")
            self._run_view.show_waiting(text)
        elif level == "warning":
            self._banner.show_message(text)
        self.status_message.emit(text)

    def _on_finished(self, outcome: JobOutcome) -> None:
        model = Path(outcome.result["model"])
        self._run_view.finish(f"Job {outcome.job_id} succeeded: the model is saved as {model.name}.", "Done")
        self._end()
        self.model_saved.emit(model)
        self.status_message.emit(f"Training finished; model saved to {model}.")

    def _on_failed(self, message: str, _detail: str) -> None:
        job_id = self.worker.job_id if self.worker else None
        text = f"Job {job_id} failed." if job_id else "The training could not start."
        self._run_view.finish(text, "Failed")
        self._banner.show_message(message)
        self._end()

    def _on_cancelled(self, message: str) -> None:
        job_id = self.worker.job_id if self.worker else None
        self._run_view.finish(
            f"Job {job_id} cancelled. Resume continues from its last finished epoch.", "Cancelled"
        )
        self.status_message.emit(message)
        self.resumable_job = job_id
        self._end()

    def _end(self) -> None:
        """Lets the ended worker go; deleted later, because this runs inside its own final signal."""
        if self.worker is not None:
            self.worker.wait()
            self.worker.deleteLater()
        self.worker = None
        self.ended.emit()
