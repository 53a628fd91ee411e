"""The Jobs page: the job store's history, live, with the selected job's details and curves.

The store is opened and read on a read thread once a second while the page is visible (and whenever a job of
this window starts or ends), so jobs started from the command line show up too and the window never
waits for the disk. Cancel stops a job of this window through its worker, and asks any other
process's job to stop through the store, as ``modelai jobs cancel`` does. A training job shows its
loss curves again from the store, and a cancelled or interrupted one offers Resume.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.jobs.records import JobRecord, JobStatus
from engine.jobs.runner import open_store, read_store
from engine.jobs.specs import allow_overwrite, spec_from_dict
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.widgets.job_details import JobDetails, JobDetailsView, read_details
from modelai_desktop.widgets.job_table import JobTable
from modelai_desktop.widgets.loss_plot import LossPlot
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.workers import JobRegistry, JobWorker

log = logging.getLogger(__name__)

REFRESH_MS = 1000
LISTED_JOBS = 500
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobsPage(QWidget):
    """The job table above the details of the selected job.

    Signals:
        status_message(str): one line for the status bar.
        resume_requested(int): the user asked to continue this training job from its checkpoint.
    """

    status_message = Signal(str)
    resume_requested = Signal(int)

    def __init__(
        self, tasks: BackgroundTasks, home: Path, jobs: JobRegistry, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._home = home
        self._jobs = jobs
        self._refresh_task: asyncio.Task[None] | None = None
        self._refresh_again = False
        self._selected: JobRecord | None = None
        self._selected_details: JobDetails | None = None
        self._select_when_listed: int | None = None
        self._plotted: tuple[object, ...] | None = None

        self.banner = MessageBanner()
        self.table = JobTable(jobs.last_progress)
        self.table.selected.connect(lambda _job_id: self.refresh())
        self.details = JobDetailsView()
        title = QLabel("Jobs")
        title.setObjectName("sectionTitle")
        self.count_label = QLabel()
        self.rerun_button = QPushButton("Rerun")
        self.rerun_button.setToolTip("Run the selected job again with the same settings, as a new job")
        self.rerun_button.clicked.connect(self._confirm_rerun)
        self.cancel_button = QPushButton("Cancel job")
        self.cancel_button.setToolTip("Stop the selected job at its next batch or tile")
        self.cancel_button.clicked.connect(self.cancel_selected)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue this training job from its last checkpoint, as a new job")
        self.resume_button.clicked.connect(self._resume_selected)
        self.curves = LossPlot()
        self.curves.hide()
        header = QHBoxLayout()
        header.addWidget(title)
        header.addWidget(self.count_label)
        header.addStretch(1)
        header.addWidget(self.resume_button)
        header.addWidget(self.rerun_button)
        header.addWidget(self.cancel_button)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        details = QSplitter(Qt.Orientation.Horizontal)
        details.addWidget(self.details)
        details.addWidget(self.curves)
        splitter.addWidget(details)
        splitter.setSizes([300, 420])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(header)
        layout.addWidget(splitter, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(REFRESH_MS)
        self.timer.timeout.connect(self.refresh)
        jobs.changed.connect(self.refresh)
        self._update_buttons()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self.timer.stop()

    def refresh(self) -> asyncio.Task[None]:
        """Starts reading the store, unless a read is under way (then it reads again once it ends)."""
        if self._refresh_task is not None:
            self._refresh_again = True
            return self._refresh_task
        self._refresh_task = self._tasks.start(self.reload(), name="read-jobs")
        self._refresh_task.add_done_callback(self._refreshed)
        return self._refresh_task

    async def reload(self) -> None:
        """Reads the job list and the selected job's details, and shows them."""
        try:
            jobs = await self._tasks.run_blocking(self._read_jobs)
            self.table.set_jobs(jobs)
            if self._select_when_listed is not None and self.table.select_job(self._select_when_listed):
                self._select_when_listed = None
            job_id = self.table.selected_job_id()
            details = await self._tasks.run_blocking(self._read_details, job_id) if job_id else None
        except EngineError as exc:
            log.warning("The job history cannot be read: %s", exc)
            self.banner.show_message(f"The job history cannot be read: {exc}")
            return
        if job_id == self.table.selected_job_id():
            self._selected = details.job if details is not None else None
            self._selected_details = details
            self.details.show_details(details)
            self._show_curves(details)
        count = len(jobs)
        self.count_label.setText(f"{count} job{'s' if count != 1 else ''}" if count else "none yet")
        self._update_buttons()

    def cancel_selected(self) -> None:
        """Stops the selected job: through its worker if this window runs it, else through the store."""
        job = self._selected
        if job is None or job.status not in ACTIVE:
            return
        worker = self._jobs.find(job.id)
        if worker is not None:
            worker.cancel()
            self.status_message.emit(f"Cancelling job {job.id}…")
        else:
            self._tasks.start(self._request_cancel(job.id), name="cancel-job")

    def rerun(self, job: JobRecord) -> JobWorker | None:
        """Runs a job's settings again as a new job of this window, replacing the outputs it wrote."""
        try:
            spec = allow_overwrite(spec_from_dict(job.kind, job.spec))
        except EngineError as exc:
            self.banner.show_message(str(exc))
            return None
        worker = JobWorker(spec, self._home, parent_job_id=job.id)
        worker.started.connect(self._select_new_job)
        worker.failed.connect(lambda message, _detail: self.banner.show_message(message))
        self._jobs.add(worker)
        worker.start()
        self.status_message.emit(f"Running job {job.id} again…")
        return worker

    def _confirm_rerun(self) -> None:
        """A plain slot (never a coroutine), so the question's modal loop is safe."""
        job = self._selected
        if job is None:
            return
        answer = QMessageBox.question(
            self,
            "Rerun job",
            f"Run job {job.id} ({job.kind}) again with the same settings, as a new job?\n\n"
            "The files it wrote are replaced.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.rerun(job)

    async def _request_cancel(self, job_id: int) -> None:
        try:
            job = await self._tasks.run_blocking(self._request_cancel_in_store, job_id)
        except EngineError as exc:
            self.banner.show_message(str(exc))
            return
        if job.status is JobStatus.CANCELLED:
            self.status_message.emit(f"Job {job_id} was cancelled before it started.")
        elif job.status is JobStatus.RUNNING:
            self.status_message.emit(f"Job {job_id} was asked to stop; it stops at its next batch or tile.")
        else:
            self.status_message.emit(f"Job {job_id} had already ended ({job.status.value}).")
        self.refresh()

    def _show_curves(self, details: JobDetails | None) -> None:
        """Redraws the curves only when another job is selected or a new epoch was recorded."""
        if details is None or not details.job.kind.startswith("train") or not details.epochs:
            self._plotted = None
            self.curves.hide()
            return
        shown = (details.job.id, len(details.epochs), tuple(details.classes))
        if shown != self._plotted:
            self._plotted = shown
            self.curves.set_classes(details.classes)
            self.curves.show_history(details.epochs)
        self.curves.show()

    def _resume_selected(self) -> None:
        details = self._selected_details
        if details is not None and details.resumable:
            self.resume_requested.emit(details.job.id)

    def _select_new_job(self, job_id: int) -> None:
        self._select_when_listed = job_id
        self.refresh()

    # Each read opens the store read-only (no write lock, no migration) and closes it: a connection
    # kept open for the page's lifetime would make SQLite defer closing every other connection's
    # file in this process (POSIX locks are per process), one leaked descriptor per job the window runs.
    def _read_jobs(self) -> list[JobRecord]:
        with read_store(self._home) as store:
            return store.list_jobs(limit=LISTED_JOBS)

    def _request_cancel_in_store(self, job_id: int) -> JobRecord:
        with open_store(self._home) as store:
            return store.request_cancel(job_id)

    def _read_details(self, job_id: int) -> JobDetails:
        with read_store(self._home) as store:
            return read_details(store, job_id)

    def _refreshed(self, _task: asyncio.Task[None]) -> None:
        self._refresh_task = None
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def _update_buttons(self) -> None:
        job = self._selected
        self.cancel_button.setEnabled(job is not None and job.status in ACTIVE)
        self.rerun_button.setEnabled(job is not None and job.status not in ACTIVE)
        # Offered only where it can work; the details say why not otherwise.
        details = self._selected_details
        self.resume_button.setVisible(details is not None and details.resumable)
