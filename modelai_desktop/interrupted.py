"""Work that stopped when ModelAI did: found at start-up, offered for resuming once, in a banner.

A crash, a power cut or a killed process leaves a job ``running`` in the store; opening the store
(`engine.jobs.runner.open_store`) marks it ``interrupted``. The window then says so in a banner rather
than a dialog, because a modal dialog would stop the user at start-up (and must never open inside
a coroutine), above every page, and offers Resume for the training jobs that can continue: from
their own checkpoint, or from epoch 1 when they stopped before writing one. A job leaves the
banner once it is resumed, from the banner or from the Jobs page.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QPushButton, QToolButton, QWidget

from engine.errors import EngineError
from engine.jobs.records import EpochRecord, JobRecord
from engine.jobs.runner import open_store, resume_spec
from engine.jobs.specs import TRAIN_KIND_PREFIX, TrainSpec
from engine.jobs.store import JobStore

MAX_JOBS_SHOWN = 4
BANNER_STYLE = (
    "#interruptedBanner { background: #e8f0fe; border: 1px solid #8ab4f8; border-radius: 4px; }"
    "#interruptedBanner QLabel { color: #15325b; }"
)


@dataclass(frozen=True)
class InterruptedJob:
    """A job a crash stopped, how far it got, and whether it can continue (``from_start``: from epoch 1)."""

    record: JobRecord
    last_epoch: int
    resumable: bool
    from_start: bool = False

    def describe(self) -> str:
        """``Job 7, segmentation training: stopped after epoch 3 of 20``."""
        job = self.record
        if job.kind.startswith(TRAIN_KIND_PREFIX):
            what = f"{job.kind.removeprefix(TRAIN_KIND_PREFIX)} training"
            epochs = job.spec.get("epochs", "?")
            where = f"stopped after epoch {self.last_epoch} of {epochs}" if self.last_epoch else "stopped"
        else:
            what, where = job.kind, "stopped before it finished"
        return f"Job {job.id}, {what}: {where}"


@dataclass(frozen=True)
class ResumePlan:
    """What resuming a training job needs: the spec that continues it and the epochs it has done."""

    job_id: int
    spec: TrainSpec
    epochs: list[EpochRecord]


def find_interrupted(home: Path) -> list[InterruptedJob]:
    """Opens the job store (which marks jobs left by a dead process) and lists the interrupted ones
    that no later job has resumed.

    Reads the store: call it on a read thread.
    """
    with open_store(home) as store:
        resumed = {job.parent_job_id for job in store.list_jobs(limit=None)}
        jobs = []
        for record in store.interrupted_jobs():
            if record.id in resumed:
                continue
            epochs = store.epochs(record.id)
            spec = _resume_spec_or_none(store, record)
            from_start = spec is not None and spec.config.resume is None
            last_epoch = epochs[-1].epoch if epochs else 0
            jobs.append(InterruptedJob(record, last_epoch, spec is not None, from_start))
        return jobs


def _resume_spec_or_none(store: JobStore, record: JobRecord) -> TrainSpec | None:
    """The spec that continues a training job, or None when it cannot continue (or is no training)."""
    if not record.kind.startswith(TRAIN_KIND_PREFIX):
        return None
    try:
        return resume_spec(store, record.id)
    except EngineError:
        return None


def plan_resume(home: Path, job_id: int) -> ResumePlan:
    """The spec that continues a cancelled or interrupted training job, and its recorded epochs.

    Raises:
        JobStoreError: the job cannot resume (not training, finished, or no checkpoint left).
    """
    with open_store(home) as store:
        return ResumePlan(job_id, resume_spec(store, job_id), store.epochs(job_id))


class InterruptedBanner(QFrame):
    """Names the interrupted jobs with a Resume button for each training job that can continue.

    Signals:
        resume_requested(int): the user asked to resume this job id.
    """

    resume_requested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("interruptedBanner")
        self.setStyleSheet(BANNER_STYLE)
        self.resume_buttons: dict[int, QPushButton] = {}
        self._rows: dict[int, list[QWidget]] = {}
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(10, 6, 6, 6)
        self._layout.setHorizontalSpacing(12)
        self._layout.setVerticalSpacing(4)
        self.close_button = QToolButton()
        self.close_button.setText("✕")
        self.close_button.setAutoRaise(True)
        self.close_button.setToolTip("Dismiss; the jobs stay in the job list, where they can be resumed")
        self.close_button.clicked.connect(self.hide)
        self.hide()

    def show_jobs(self, jobs: list[InterruptedJob]) -> None:
        """Lists the jobs (the newest few) and shows the banner; nothing happens for an empty list."""
        if not jobs:
            return
        while self._layout.count():
            item = self._layout.takeAt(0)
            if item.widget() is not None and item.widget() is not self.close_button:
                item.widget().deleteLater()
        self.resume_buttons.clear()
        self._rows.clear()
        plural = "s were" if len(jobs) != 1 else " was"
        heading = QLabel(f"<b>{len(jobs)} job{plural} interrupted when ModelAI last stopped.</b>")
        self._layout.addWidget(heading, 0, 0)
        self._layout.addWidget(self.close_button, 0, 2, Qt.AlignmentFlag.AlignRight)
        for row, job in enumerate(jobs[:MAX_JOBS_SHOWN], start=1):
            label = QLabel(f"• {job.describe()}{_hint(job)}")
            self._layout.addWidget(label, row, 0)
            self._rows[job.record.id] = [label]
            if job.resumable:
                button = QPushButton("Start again" if job.from_start else "Resume")
                button.setToolTip(
                    f"Train job {job.record.id} again from epoch 1: it stopped before its first checkpoint"
                    if job.from_start
                    else f"Continue job {job.record.id} from its last checkpoint"
                )
                button.clicked.connect(
                    lambda _checked=False, job_id=job.record.id: self.resume_requested.emit(job_id)
                )
                self.resume_buttons[job.record.id] = button
                self._rows[job.record.id].append(button)
                self._layout.addWidget(button, row, 1)
        if len(jobs) > MAX_JOBS_SHOWN:
            more = QLabel(f"… and {len(jobs) - MAX_JOBS_SHOWN} more: `modelai jobs list` shows them all.")
            self._layout.addWidget(more, MAX_JOBS_SHOWN + 1, 0)
        self._layout.setColumnStretch(0, 1)
        self.show()

    def forget(self, job_id: int) -> None:
        """Drops a job that was resumed (from here or elsewhere); hides the banner once none can resume."""
        had_resumable = bool(self.resume_buttons)
        for widget in self._rows.pop(job_id, []):
            widget.hide()
            widget.deleteLater()
        self.resume_buttons.pop(job_id, None)
        if had_resumable and not self.resume_buttons:
            self.hide()


def _hint(job: InterruptedJob) -> str:
    if job.resumable:
        return " (stopped before its first checkpoint)" if job.from_start else ""
    if job.record.kind.startswith(TRAIN_KIND_PREFIX):
        return " (its checkpoint is gone: train it again)"
    return " (run it again from the Jobs page)"
