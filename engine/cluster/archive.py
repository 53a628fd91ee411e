"""The client side of a cluster run: every raster one Dask task, each recorded as it finishes.

Before the first task: rasters whose outputs are complete are skipped (`engine.cluster.completed`),
every worker proves that it sees the rasters and the output folder, and the model's bytes are
scattered to the workers once. Then the loop hears of each raster as it ends, reports progress,
and watches the cancel token. A raster that fails is kept with its error while the others go
on. A worker that dies mid-raster is Dask's to handle: the scheduler runs the raster again on
another worker (``distributed.scheduler.allowed-failures`` times), and the dead worker's
temporary files are never taken for outputs. A cancel stops what has not started, tells running
tasks to stop at their next batch (which removes their temporary files) and waits for them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import distributed

from engine.cluster.completed import finished_prediction
from engine.cluster.connect import INSTALL_HINT, ClusterAddress, open_client, parse_address
from engine.cluster.local import torch_threads_per_worker
from engine.cluster.worker import PathReport, RasterDone, RasterToCheck, inspect_paths, predict_task
from engine.errors import ClusterError, JobCancelled
from engine.inference.outputs import check_writable_folder
from engine.inference.predict import PredictionResult, PredictOptions, check_prediction_settings
from engine.progress import CancelToken, ProgressEvent, Reporter

POLL_S = 0.25
# How long a cancel waits for running tasks to stop at their next batch and remove their files.
CANCEL_GRACE_S = 60.0
SHOWN_FAILURES = 3
ERROR_CHARACTERS = 300


@dataclass
class ArchiveRun:
    """What a cluster run has done so far; `summary` is the job's result in the store."""

    cluster: str
    rasters: list[Path]
    output_dir: Path
    workers: list[str] = field(default_factory=list)
    predicted: dict[Path, RasterDone] = field(default_factory=dict)
    skipped: list[Path] = field(default_factory=list)
    failed: dict[Path, str] = field(default_factory=dict)

    def predictions(self) -> list[PredictionResult]:
        """The rasters predicted by this run, in the order they were given."""
        return [self.predicted[path].prediction for path in self.rasters if path in self.predicted]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the rasters predicted (with the worker of each), skipped and failed."""
        return {
            "output_dir": str(self.output_dir),
            "cluster": self.cluster,
            "workers": self.workers,
            "rasters": [
                {
                    "raster": str(path),
                    "seconds": self.predicted[path].prediction.seconds,
                    "summary": self.predicted[path].prediction.summary,
                    "worker": self.predicted[path].worker,
                }
                for path in self.rasters
                if path in self.predicted
            ],
            "skipped": [str(path) for path in self.skipped],
            "failed": [{"raster": str(path), "error": error} for path, error in self.failed.items()],
        }


RunUpdate = Callable[[ArchiveRun, PredictionResult | None], None]


def predict_archive(
    cluster: str,
    model: Path,
    rasters: list[Path],
    output_dir: Path,
    options: PredictOptions,
    reporter: Reporter,
    cancel: CancelToken,
    on_update: RunUpdate,
) -> ArchiveRun:
    """Predicts every raster on the cluster ``cluster`` names (see `engine.cluster.connect`).

    ``on_update`` hears of every change as it happens: once the skipped rasters are known, then per
    raster, with its result when it was predicted (None when it failed).

    Raises:
        ClusterError: the cluster cannot be used, a worker cannot see a path, or rasters failed
            (the others are predicted and in the returned run's record, through ``on_update``).
        JobCancelled: ``cancel`` was set; the rasters finished before are kept.
    """
    address = parse_address(cluster)
    metadata = check_prediction_settings(model, options)
    model_bytes = model.read_bytes()
    model_sha256 = hashlib.sha256(model_bytes).hexdigest()
    run = ArchiveRun(cluster, rasters, output_dir)
    check_writable_folder(output_dir)
    if not options.overwrite:
        run.skipped = [
            path
            for path in rasters
            if finished_prediction(metadata, path, output_dir, options, model_sha256) is not None
        ]
    if run.skipped:
        reporter.on_message(
            "info",
            f"{len(run.skipped)} raster(s) skipped: their outputs in {output_dir} are complete "
            "(--overwrite predicts them again).",
        )
    on_update(run, None)
    skipped = set(run.skipped)
    todo = [path for path in rasters if path not in skipped]
    if not todo:
        return run
    with open_client(address) as client:
        run.workers = check_workers(client, address, todo, output_dir)
        reporter.on_message(
            "info", f"Predicting {len(todo)} raster(s) on {len(run.workers)} worker(s) of {cluster}..."
        )
        token = uuid.uuid4().hex[:12]
        cancel_event = distributed.Event(f"modelai-cancel-{token}", client=client)
        [shared_model] = client.scatter([model_bytes], broadcast=True, hash=False)
        threads = None if address.local_workers is None else torch_threads_per_worker(address.local_workers)
        futures = {
            client.submit(
                predict_task,
                shared_model,
                model_sha256,
                str(model),
                str(path),
                str(output_dir),
                options,
                cancel_event.name,
                threads,
                key=f"modelai-{token}-{index}-{path.name}",
                pure=False,
            ): path
            for index, path in enumerate(todo)
        }
        _follow(client, futures, run, reporter, cancel, cancel_event, on_update)
    if run.failed:
        raise ClusterError(_failure_message(run))
    return run


def check_workers(
    client: distributed.Client, address: ClusterAddress, rasters: list[Path], output_dir: Path
) -> list[str]:
    """Every worker's name, once each has shown that it sees every raster and the output folder.

    Raises:
        ClusterError: names each worker that cannot see (or write) a path, and the paths.
    """
    token = uuid.uuid4().hex
    marker = output_dir / f".modelai-cluster-check-{token}"
    marker.write_text(token)
    checks = [RasterToCheck(str(path), path.stat().st_size if path.is_file() else None) for path in rasters]
    try:
        reports: dict[str, PathReport] = client.run(
            inspect_paths, checks, str(output_dir), marker.name, token
        )
    except Exception as exc:
        raise ClusterError(
            f"--cluster {address.text}: a worker cannot run ModelAI ({type(exc).__name__}: {exc}). Install "
            f"the same ModelAI version on every worker, with its cluster extra ({INSTALL_HINT})."
        ) from exc
    finally:
        marker.unlink(missing_ok=True)
    problems = [
        f"worker {worker} on {report.host} {'; '.join(report.problems)}"
        for worker, report in reports.items()
        if report.problems
    ]
    if problems:
        raise ClusterError(
            f"--cluster {address.text}: not every worker sees the run's files: {' | '.join(problems)}. "
            "Put the rasters and the output folder on storage that every worker mounts at the same path."
        )
    return [f"{worker} ({report.host})" for worker, report in reports.items()]


def _follow(
    client: distributed.Client,
    pending: dict[distributed.Future, Path],
    run: ArchiveRun,
    reporter: Reporter,
    cancel: CancelToken,
    cancel_event: distributed.Event,
    on_update: RunUpdate,
) -> None:
    """Records each raster as its task ends, until all have, or stops them all on a cancel.

    A recorded task is dropped from ``pending`` at once, which releases its result: Dask would
    otherwise run it again if the worker holding the result died later.
    """
    completed = distributed.as_completed(pending)
    started = time.monotonic()
    total = len(pending)
    warned: set[str] = set()
    label = ""
    while not completed.is_empty():
        finished = completed.next_batch(block=False)
        for future in finished:
            if future.status == "lost":  # its result died with a worker: Dask computes it again
                completed.add(future)
                continue
            raster = pending.pop(future)
            _record(future, raster, run, reporter, warned, on_update)
            label = raster.name
        _report(reporter, total - len(pending), total, started, label)
        if cancel.cancelled:
            _stop(client, list(pending), cancel_event)
            for future, raster in pending.items():  # rasters completed while the others stopped
                if future.status == "finished" and future.result().prediction is not None:
                    _record(future, raster, run, reporter, warned, on_update)
            raise JobCancelled(
                f"The prediction on {run.cluster} was cancelled after {len(run.predicted)} of "
                f"{total} raster(s); their outputs are kept."
            )
        if not finished:
            time.sleep(POLL_S)


def _record(
    future: distributed.Future,
    raster: Path,
    run: ArchiveRun,
    reporter: Reporter,
    warned: set[str],
    on_update: RunUpdate,
) -> None:
    """Keeps a finished task's result, or its error as the raster's failure."""
    done: RasterDone | None = future.result() if future.status == "finished" else None
    for warning in done.warnings if done is not None else []:
        if warning not in warned:
            warned.add(warning)
            reporter.on_message("warning", warning)
    if done is not None and done.prediction is not None:
        run.predicted[raster] = done
        on_update(run, done.prediction)
        return
    if done is not None and done.error is not None:
        error = done.error
    else:
        error = _error_text(future.exception() if future.status == "error" else None)
    run.failed[raster] = error
    reporter.on_message("warning", f"{raster.name} failed: {error}")
    on_update(run, None)


def _error_text(exc: BaseException | None) -> str:
    """What a task that raised met: a crash of the worker, or an internal error's first line."""
    if exc is None:
        return "its task was cancelled on the cluster"
    if isinstance(exc, distributed.KilledWorker):
        return (
            f"every worker that had it died ({exc.allowed_failures + 1}, the last "
            f"{exc.last_worker.address}): it may need more memory than a worker has; see the workers' logs"
        )
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"internal error: {type(exc).__name__}: {first_line} (the worker's log has the traceback)"


def _stop(
    client: distributed.Client, pending: list[distributed.Future], cancel_event: distributed.Event
) -> None:
    """Cancels the tasks not yet started and gives the running ones time to stop cleanly."""
    cancel_event.set()
    running_keys = {key for keys in client.processing().values() for key in keys}
    client.cancel([future for future in pending if not future.done() and future.key not in running_keys])
    running = [future for future in pending if future.key in running_keys]
    try:
        distributed.wait(running, timeout=CANCEL_GRACE_S)
    except TimeoutError:
        client.cancel(running)


def _report(reporter: Reporter, done: int, total: int, started: float, label: str) -> None:
    """Progress in rasters; called every poll, so that a cancel asked through the store is heard."""
    elapsed = max(time.monotonic() - started, 1e-9)
    reporter.on_progress(
        ProgressEvent(
            stage="rasters",
            done=done,
            total=total,
            rate=done / elapsed * 60,
            rate_unit="rasters/min",
            eta_s=elapsed / done * (total - done) if done else None,
            label=label,
        )
    )


def _failure_message(run: ArchiveRun) -> str:
    failures = [
        f"{path.name}: {error[:ERROR_CHARACTERS]}"
        for path, error in list(run.failed.items())[:SHOWN_FAILURES]
    ]
    more = len(run.failed) - SHOWN_FAILURES
    listed = "; ".join(failures) + (f"; and {more} more (`modelai jobs show` lists them)" if more > 0 else "")
    return (
        f"{len(run.failed)} of {len(run.rasters)} raster(s) failed on {run.cluster} ({listed}). The "
        f"{len(run.predicted) + len(run.skipped)} others are complete in {run.output_dir}: fix the failed "
        "ones and run the job again, which skips complete rasters."
    )
