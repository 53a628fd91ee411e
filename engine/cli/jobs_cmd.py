"""``modelai jobs list|show|rerun|cancel|resume``: the job history, from the terminal.

The same store the window's job page reads, so a job started in one shows up in the other. An
unknown job id is bad input (exit 2, one line saying how to list the ids).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.cli import predict, train
from engine.cli.commands import VERBS
from engine.cli.results import add_json_option, print_json
from engine.cli.terminal import TerminalReporter, format_duration
from engine.jobs.records import EpochRecord, JobRecord, JobStatus
from engine.jobs.runner import JobOutcome, open_store, rerun, resume_spec, run
from engine.jobs.specs import allow_overwrite
from engine.progress import CancelToken

MESSAGE_WIDTH = 70


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``jobs`` verb and its actions."""
    parser = subparsers.add_parser(
        "jobs",
        help=VERBS["jobs"].summary,
        description="Every `modelai train` and `modelai predict` is recorded as a job in the data folder.",
    )
    actions = parser.add_subparsers(dest="jobs_action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", choices=[status.value for status in JobStatus], help="only these jobs")
    listing.add_argument("--limit", type=int, default=20, help="at most this many jobs (default %(default)s)")
    add_json_option(listing)
    listing.set_defaults(func=list_jobs)

    show = actions.add_parser("show", help="a job's settings, epochs, outputs and error")
    show.add_argument("job_id", type=int, metavar="ID")
    add_json_option(show)
    show.set_defaults(func=show_job)

    again = actions.add_parser("rerun", help="run a job again with the same settings, as a new job")
    again.add_argument("job_id", type=int, metavar="ID")
    again.add_argument("--overwrite", action="store_true", help="replace the outputs the earlier run wrote")
    again.set_defaults(func=rerun_job)

    cancel = actions.add_parser("cancel", help="cancel a queued job, or ask a running one to stop")
    cancel.add_argument("job_id", type=int, metavar="ID")
    cancel.set_defaults(func=cancel_job)

    resume = actions.add_parser("resume", help="continue an interrupted or cancelled training job")
    resume.add_argument("job_id", type=int, metavar="ID")
    resume.set_defaults(func=resume_job)


def list_jobs(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Prints a table (or JSON) of the newest jobs."""
    with open_store(args.home) as store:
        jobs = store.list_jobs(limit=args.limit, status=args.status)
    if args.json:
        print_json([_job_json(job) for job in jobs])
        return 0
    if not jobs:
        print("no jobs recorded yet" if args.status is None else f"no {args.status} jobs")
        return 0
    rows = [("ID", "KIND", "STATUS", "STARTED", "DURATION", "RESULT")]
    rows += [
        (str(job.id), job.kind, job.status, _local(job.started), _duration(job), _result_text(job))
        for job in jobs
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
    return 0


def show_job(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Prints everything recorded about one job."""
    with open_store(args.home) as store:
        job = store.get_job(args.job_id)
        epochs = store.epochs(job.id)
        artifacts = store.artifacts(job.id)
    if args.json:
        print_json({**_job_json(job), "epochs": epochs, "artifacts": artifacts})
        return 0
    print(
        f"job {job.id}  {job.kind}  {job.status}" + ("  (cancel requested)" if job.cancel_requested else "")
    )
    facts = {
        "created": _local(job.created),
        "started": _local(job.started),
        "finished": _local(job.finished),
        "duration": _duration(job),
        "device": job.device or "",
        "process": f"{job.pid} on {job.host}" if job.pid is not None else "",
        "from job": str(job.parent_job_id or ""),
        "checkpoint": _with_existence(job.checkpoint_path) if job.checkpoint_path else "",
        "versions": ", ".join(f"{name} {version}" for name, version in job.versions.items()),
    }
    for name, value in facts.items():
        if value and value != "-":
            print(f"  {name:<10} {value}")
    print("settings:")
    for name, value in job.spec.items():
        print(f"  {name}: {json.dumps(value)}")
    if epochs:
        print("epochs:")
        for line in _epoch_table(epochs):
            print("  " + line)
    if artifacts:
        print("outputs:")
        for artifact in artifacts:
            print(f"  {artifact.kind:<14} {_with_existence(artifact.path)}  ({_size(artifact.size_bytes)})")
    if job.result:
        print("result:")
        for name, value in job.result.items():
            if name != "rasters" and value not in (None, [], {}):
                print(f"  {name}: {_value_text(value)}")
        for raster in job.result.get("rasters", []):
            worker = f" on {raster['worker']}" if "worker" in raster else ""  # a cluster run's
            print(f"  {raster['raster']}: {format_duration(raster['seconds'])}{worker}")
    if job.error_message:
        print(f"error: {job.error_message}")
        for line in (job.error_detail or "").splitlines():
            print(f"  {line}")
    return 0


def rerun_job(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Runs a recorded job's settings again as a new job linked to the old one."""
    with open_store(args.home) as store:
        spec = rerun(store, args.job_id)
        if args.overwrite:
            spec = allow_overwrite(spec)
        print_outcome(run(store, spec, TerminalReporter.for_args(args), cancel, parent_job_id=args.job_id))
    return 0


def resume_job(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Continues an interrupted or cancelled training job from its checkpoint, as a new job."""
    with open_store(args.home) as store:
        spec = resume_spec(store, args.job_id)
        if spec.config.resume is None:
            print(
                f"job {args.job_id} stopped before its first checkpoint: training it from epoch 1",
                file=sys.stderr,
            )
        print_outcome(run(store, spec, TerminalReporter.for_args(args), cancel, parent_job_id=args.job_id))
    return 0


def cancel_job(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Cancels a queued job at once; flags a running one, whose runner stops at its next batch."""
    with open_store(args.home) as store:
        before = store.get_job(args.job_id).status
        job = store.request_cancel(args.job_id)
    if job.status is JobStatus.RUNNING:
        print(
            f"job {job.id}: cancel requested; process {job.pid} stops it after the current batch"
            f" (training keeps its checkpoint: `modelai jobs resume {job.id}` continues it)"
        )
    elif before is JobStatus.QUEUED:
        print(f"job {job.id}: cancelled before it started")
    else:
        print(f"job {job.id} had already ended ({job.status}); nothing to cancel")
    return 0


def print_outcome(outcome: JobOutcome) -> None:
    """What ``modelai train`` or ``modelai predict`` prints for the same job."""
    if outcome.training is not None:
        train.print_result(outcome.training)
    else:
        predict.print_results(
            outcome.predictions,
            Path(outcome.result["output_dir"]),
            skipped=len(outcome.result.get("skipped", [])),
        )


def _job_json(job: JobRecord) -> dict[str, Any]:
    return {
        "id": job.id,
        "kind": job.kind,
        "status": str(job.status),
        "created": job.created.isoformat(),
        "started": job.started.isoformat() if job.started else None,
        "finished": job.finished.isoformat() if job.finished else None,
        "duration_s": job.duration_s,
        "result": job.result,
        "error": job.error_message,
        "parent_job_id": job.parent_job_id,
        "spec": job.spec,
    }


def _local(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S") if moment else "-"


def _duration(job: JobRecord) -> str:
    if job.duration_s is not None:
        return format_duration(job.duration_s)
    if job.status is JobStatus.RUNNING and job.started is not None:
        return format_duration((datetime.now(UTC) - job.started).total_seconds()) + "…"
    return "-"


def _result_text(job: JobRecord) -> str:
    """A short line for the list: what a success produced (paths in full), or why a job did not succeed."""
    result = job.result or {}
    if job.status is JobStatus.SUCCEEDED and "model" in result:
        best = result.get("best_metric")
        score = f"{result.get('monitor')} {best:.4f}, " if best is not None else ""
        return f"{score}{result.get('epochs_run')} epoch(s) → {result['model']}"
    if job.status is JobStatus.SUCCEEDED:
        return f"{len(result.get('rasters', []))} raster(s) → {result.get('output_dir', '')}"
    if job.status is JobStatus.RUNNING and job.cancel_requested:
        return "cancel requested"
    text = job.error_message.splitlines()[0] if job.error_message else ""
    return text if len(text) <= MESSAGE_WIDTH else text[: MESSAGE_WIDTH - 1] + "…"


def _epoch_table(epochs: list[EpochRecord]) -> list[str]:
    names = list(dict.fromkeys(name for epoch in epochs for name in epoch.metrics if "/" not in name))
    header = ["epoch", "train loss", "val loss", *names, "lr", "time"]
    rows = [header]
    for epoch in epochs:
        rows.append(
            [
                str(epoch.epoch),
                _number(epoch.train_loss),
                _number(epoch.val_loss),
                *(_number(epoch.metrics.get(name)) for name in names),
                f"{epoch.lr:.2e}" if epoch.lr is not None else "-",
                format_duration(epoch.duration_s),
            ]
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]


def _value_text(value: Any) -> str:
    """Numbers to four significant digits and metric tables as ``name value`` pairs, for reading."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{name} {_value_text(item)}" for name, item in value.items())
    if isinstance(value, list):
        return "; ".join(_value_text(item) for item in value)
    return str(value)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _with_existence(path: Path) -> str:
    return str(path) if path.exists() else f"{path}  [missing]"


def _size(size_bytes: int) -> str:
    size, unit = float(size_bytes), "B"
    for larger in ("KB", "MB", "GB"):
        if size < 1024:
            break
        size, unit = size / 1024, larger
    return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
