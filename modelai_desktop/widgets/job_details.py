"""Everything the store knows about one job, as a read-only page: what ``modelai jobs show`` prints.

The error comes first for a failed job (its message says what to do), then the outputs with a check
that each file still exists, the per-epoch metrics of a training, and the settings it ran with.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QTextBrowser, QWidget

from engine.errors import EngineError
from engine.jobs.records import ArtifactRecord, EpochRecord, JobRecord, JobStatus
from engine.jobs.store import JobStore
from engine.models.metadata import ClassInfo
from modelai_desktop.widgets.job_table import duration_text, started_text, status_color

RESUMABLE = (JobStatus.CANCELLED, JobStatus.INTERRUPTED)
NO_JOB_TEXT = "Select a job to see its settings, metrics, outputs and errors."
MAX_METRIC_COLUMNS = 4
STYLE = (
    "<style>h3 { margin: 0 0 4px 0; } h4 { margin: 6px 0 4px 0; }"
    " td, th { padding: 1px 10px 1px 0; } th { text-align: left; }"
    " pre { font-size: 9pt; } .error { color: #b71c1c; } .missing { color: #b71c1c; }</style>"
)


@dataclass(frozen=True)
class JobDetails:
    """One job with its epochs and outputs; ``exists`` tells, per output, whether the file is still there.

    ``resume_problem`` says why a stopped training job cannot resume ("" when it can, or when the
    job is no stopped training).
    """

    job: JobRecord
    epochs: list[EpochRecord]
    outputs: list[ArtifactRecord]
    exists: list[bool]
    resume_problem: str = ""
    classes: list[ClassInfo] = field(default_factory=list)

    @property
    def resumable(self) -> bool:
        return self.job.kind.startswith("train") and self.job.status in RESUMABLE and not self.resume_problem


def read_details(store: JobStore, job_id: int) -> JobDetails:
    """Reads a job, its epochs and outputs, and checks the files (blocking: run on a read thread)."""
    outputs = store.artifacts(job_id)
    job = store.get_job(job_id)
    exists = [a.path.exists() for a in outputs]
    return JobDetails(
        job, store.epochs(job_id), outputs, exists, resume_problem(store, job), model_classes(job)
    )


def model_classes(job: JobRecord) -> list[ClassInfo]:
    """The classes of the model a training job saved, as named now (the curves show these names);
    empty when the job saved no model or it is gone or unreadable."""
    model = (job.result or {}).get("model") if job.kind.startswith("train") else None
    if not model:
        return []
    from engine.models.file import read_metadata  # imports torch: here, on the read thread, not at start

    try:
        return read_metadata(model).classes
    except EngineError:
        return []


def resume_problem(store: JobStore, job: JobRecord) -> str:
    """Why Resume would fail for a stopped training job: a later job already continued it, its model
    file exists now, or its checkpoint is gone ("" when none of these, or for any other job)."""
    if not job.kind.startswith("train") or job.status not in RESUMABLE:
        return ""
    later = [other for other in store.list_jobs(limit=None) if other.parent_job_id == job.id]
    finished = [other for other in later if other.status is not JobStatus.FAILED]
    if finished:
        return f"job {finished[0].id} already continued it ({finished[0].status.value})."
    output = job.spec.get("output")
    if output and Path(output).exists():
        return f"its model {output} exists now; train anew with Rerun, or rename that model first."
    if job.checkpoint_path is None or not job.checkpoint_path.is_file():
        return "it left no checkpoint to continue from; Rerun trains it again from the start."
    return ""


def _rows(cells: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    """A table; one with a header is a table of numbers whose cells never break ("pixel accura cy",
    "0.123 456"): the view scrolls sideways instead."""
    cell = "<td style='white-space:nowrap'>" if header else "<td>"
    head = (
        "<tr>" + "".join(f"<th style='white-space:nowrap'>{html.escape(h)}</th>" for h in header) + "</tr>"
        if header
        else ""
    )
    body = "".join("<tr>" + "".join(f"{cell}{text}</td>" for text in row) + "</tr>" for row in cells)
    return f"<table cellspacing='0' style='margin-bottom:10px'>{head}{body}</table>"


def _number(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.4g}"


def details_html(details: JobDetails) -> str:
    """The details page of one job."""
    job = details.job
    parts = [
        STYLE,
        f"<h3>Job {job.id} · {html.escape(job.kind)} · "
        f"<span style='color:{status_color(job.status)}'>{job.status.value}</span></h3>",
    ]
    facts = [
        ("Started", started_text(job)),
        ("Duration", duration_text(job) or "—"),
        ("Device", html.escape(job.device or "—")),
    ]
    if job.parent_job_id is not None:
        facts.append(("Run again from", f"job {job.parent_job_id}"))
    parts.append(_rows([(f"<b>{name}</b>", value) for name, value in facts]))
    if details.resume_problem:
        parts.append(f"<p>Cannot resume: {html.escape(details.resume_problem)}</p>")
    if job.error_message:
        parts.append(f"<h4 class='error'>What went wrong</h4><p>{html.escape(job.error_message)}</p>")
        if job.error_detail:
            parts.append(f"<pre>{html.escape(job.error_detail)}</pre>")
    if details.outputs:
        rows = [
            (
                html.escape(output.kind.value),
                html.escape(str(output.path)),
                "" if exists else "<span class='missing'>missing</span>",
            )
            for output, exists in zip(details.outputs, details.exists, strict=True)
        ]
        parts.append("<h4>Outputs</h4>" + _rows(rows))
    if details.epochs:
        parts.append("<h4>Epochs</h4>" + _epoch_table(details.epochs))
    parts.append("<h4>Settings</h4>" + _rows(settings_rows(job.spec)))
    return "".join(parts)


def settings_rows(spec: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A job's settings as (name, value) rows of a form: nested options by their dotted name,
    lists joined, unset values as "—", so nobody has to read JSON."""
    rows: list[tuple[str, str]] = []
    for name, value in spec.items():
        label = f"{prefix}{name.replace('_', ' ')}"
        if isinstance(value, Mapping):
            rows.extend(settings_rows(value, f"{label} · "))
            continue
        if value is None:
            text = "—"
        elif isinstance(value, list):
            text = ", ".join(map(str, value)) or "—"
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        else:
            text = str(value)
        rows.append((f"<b>{html.escape(label)}</b>", html.escape(text)))
    return rows


def _epoch_table(epochs: list[EpochRecord]) -> str:
    names = list(dict.fromkeys(name for epoch in epochs for name in epoch.metrics if "/" not in name))
    names = names[:MAX_METRIC_COLUMNS]
    rows = [
        (
            str(epoch.epoch),
            _number(epoch.train_loss),
            _number(epoch.val_loss),
            *(_number(epoch.metrics.get(name)) for name in names),
        )
        for epoch in epochs
    ]
    return _rows(rows, ("Epoch", "Train loss", "Val loss", *(name.replace("_", " ") for name in names)))


class JobDetailsView(QTextBrowser):
    """Shows `details_html`; redraws only when the text changed, so reading is not disturbed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setOpenLinks(False)
        self._shown = ""
        self.show_details(None)

    def show_details(self, details: JobDetails | None) -> None:
        text = details_html(details) if details is not None else f"<p>{NO_JOB_TEXT}</p>"
        if text == self._shown:
            return
        scroll = self.verticalScrollBar().value()
        self.setHtml(text)
        self.verticalScrollBar().setValue(scroll)
        self._shown = text
