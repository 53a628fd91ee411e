"""The job history as a table: id, status, kind, start, duration and a one-line result per job.

Rows are the job store's own `JobRecord` values, newest first, exactly as ``modelai jobs list``
shows them. The table is refreshed in place by id, so the selection and the scroll position survive
the page's once-a-second refresh.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QTableView, QWidget

from engine.jobs.records import JobRecord, JobStatus
from engine.progress import ProgressEvent
from modelai_desktop.widgets.progress_panel import format_duration
from modelai_desktop.widgets.record_table import ModelIndex, RecordTableModel, style_record_table

COLUMNS = ("ID", "Status", "Kind", "Started", "Duration", "Result")
RESULT_COLUMN = COLUMNS.index("Result")
STATUS_COLORS = {
    JobStatus.QUEUED: "#6b6b6b",
    JobStatus.RUNNING: "#1565c0",
    JobStatus.SUCCEEDED: "#2e7d32",
    JobStatus.FAILED: "#c62828",
    JobStatus.CANCELLED: "#8d6e00",
    JobStatus.INTERRUPTED: "#8d6e00",
}
UNKNOWN_STATUS_COLOR = "#6b6b6b"  # a status written by a newer ModelAI, shown as it is stored
ProgressLookup = Callable[[int], ProgressEvent | None]


def status_color(status: JobStatus) -> str:
    """The colour a status is shown in; grey for one this version does not know."""
    return STATUS_COLORS.get(status, UNKNOWN_STATUS_COLOR)


def started_text(job: JobRecord) -> str:
    """Local date and time the job started (or was queued, while it waits)."""
    moment = job.started or job.created
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration_text(job: JobRecord) -> str:
    """How long the job ran, or has been running so far; empty for a job that never started."""
    if job.duration_s is not None:
        return format_duration(job.duration_s)
    if job.status is JobStatus.RUNNING and job.started is not None:
        return format_duration((datetime.now(UTC) - job.started).total_seconds())
    return ""


def result_text(job: JobRecord, progress: ProgressEvent | None = None) -> str:
    """One line: what a finished job produced, why it failed, or how far a running one is."""
    if job.status is JobStatus.RUNNING:
        if progress is not None and progress.total:
            return f"{progress.done / progress.total:.0%} of {progress.stage}"
        return "cancel requested" if job.cancel_requested else "running"
    if job.status is not JobStatus.SUCCEEDED:
        return (job.error_message or job.status.value).splitlines()[0]
    result = job.result or {}
    if "model" in result:
        best = result.get("best_metric")
        metric = f", {result.get('monitor')} {best:.4g}" if isinstance(best, int | float) else ""
        return f"{Path(result['model']).name}{metric}"
    rasters = result.get("rasters", [])
    return f"{len(rasters)} raster{'s' if len(rasters) != 1 else ''} → {result.get('output_dir', '')}"


class JobTableModel(RecordTableModel[JobRecord]):
    """Jobs newest first; `set_jobs` updates rows in place when the ids have not changed."""

    def __init__(self, progress: ProgressLookup, parent: QWidget | None = None) -> None:
        super().__init__(COLUMNS, parent)
        self._progress = progress

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid():
            return None
        job = self._rows[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells(job)[column]
        if role == Qt.ItemDataRole.ForegroundRole and column == COLUMNS.index("Status"):
            return QColor(status_color(job.status))
        if role == Qt.ItemDataRole.ToolTipRole and column == RESULT_COLUMN:
            return self._cells(job)[column]
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, COLUMNS.index("Duration")):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _cells(self, job: JobRecord) -> tuple[str, ...]:
        return (
            str(job.id),
            job.status.value,
            job.kind,
            started_text(job),
            duration_text(job),
            result_text(job, self._progress(job.id)),
        )

    def jobs(self) -> list[JobRecord]:
        return list(self._rows)

    def job_at(self, row: int) -> JobRecord:
        return self._rows[row]

    def row_of(self, job_id: int) -> int | None:
        return next((row for row, job in enumerate(self._rows) if job.id == job_id), None)

    def set_jobs(self, jobs: list[JobRecord]) -> None:
        """Shows ``jobs``; rows of unchanged ids are updated in place (the view keeps its selection)."""
        if [job.id for job in jobs] == [job.id for job in self._rows]:
            self._rows = list(jobs)
            if jobs:
                last = self.index(len(jobs) - 1, len(COLUMNS) - 1)
                self.dataChanged.emit(self.index(0, 0), last)
            return
        self.beginResetModel()
        self._rows = list(jobs)
        self.endResetModel()


class JobTable(QTableView):
    """The job list; emits the id of the selected job (None when nothing is selected)."""

    selected = Signal(object)

    def __init__(self, progress: ProgressLookup, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.job_model = JobTableModel(progress, self)
        self.setModel(self.job_model)
        style_record_table(self, RESULT_COLUMN, QAbstractItemView.SelectionMode.SingleSelection)
        self.selectionModel().currentRowChanged.connect(self._on_current_changed)

    def set_jobs(self, jobs: list[JobRecord]) -> None:
        """Replaces the rows, keeping the selected job selected."""
        chosen = self.selected_job_id()
        self.job_model.set_jobs(jobs)
        row = self.job_model.row_of(chosen) if chosen is not None else None
        if row is not None and self.currentIndex().row() != row:
            self.selectRow(row)
        elif chosen is not None and row is None:
            self.selected.emit(None)

    def selected_job_id(self) -> int | None:
        index = self.currentIndex()
        return self.job_model.job_at(index.row()).id if index.isValid() else None

    def select_job(self, job_id: int) -> bool:
        row = self.job_model.row_of(job_id)
        if row is not None:
            self.selectRow(row)
        return row is not None

    def _on_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.selected.emit(self.job_model.job_at(current.row()).id if current.isValid() else None)
