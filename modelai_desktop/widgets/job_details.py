"""Everything the store knows about one job, as a read-only page: what ``modelai jobs show`` prints.

The error comes first for a failed job (its message says what to do), then the outputs with a check
that each file still exists, the per-epoch metrics of a training, and the settings it ran with.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtWidgets import QTextBrowser, QWidget

from engine.job_records import ArtifactRecord, EpochRecord, JobRecord
from engine.jobs import JobStore
from modelai_desktop.widgets.job_table import duration_text, started_text, status_color

NO_JOB_TEXT = "Select a job to see its settings, metrics, outputs and errors."
MAX_METRIC_COLUMNS = 4
STYLE = (
    "<style>h3 { margin: 0 0 4px 0; } h4 { margin: 6px 0 4px 0; }"
    " td, th { padding: 1px 10px 1px 0; } th { text-align: left; }"
    " pre { font-size: 9pt; } .error { color: #b71c1c; } .missing { color: #b71c1c; }</style>"
)


@dataclass(frozen=True)
class JobDetails:
    """One job with its epochs and outputs; ``exists`` tells, per output, whether the file is still there."""

    job: JobRecord
    epochs: list[EpochRecord]
    outputs: list[ArtifactRecord]
    exists: list[bool]


def read_details(store: JobStore, job_id: int) -> JobDetails:
    """Reads a job, its epochs and outputs, and checks the files (blocking: run on a read thread)."""
    outputs = store.artifacts(job_id)
    return JobDetails(
        store.get_job(job_id), store.epochs(job_id), outputs, [a.path.exists() for a in outputs]
    )


def _rows(cells: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in cells)
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
    spec = html.escape(json.dumps(job.spec, indent=2, sort_keys=True))
    parts.append(f"<h4>Settings</h4><pre>{spec}</pre>")
    return "".join(parts)


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
