"""Runs training and prediction jobs and records each one in the job store.

The window's worker thread and the command line both call :func:`run` with a spec, a Reporter and a
CancelToken, so a job behaves and is recorded the same wherever it starts. Jobs take turns: one
runs at a time on a machine, across processes, because two trainings sharing one GPU would both
crawl or run out of memory. While a job runs, its epochs go to the store as they finish, a cancel
asked for from elsewhere (``modelai jobs cancel``) is noticed between batches, and when it ends its
outputs, result or error (with its cause) are stored.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.device import describe_device, resolve_device
from engine.errors import EngineError, JobCancelled, JobStoreError
from engine.host_memory import release_freed_memory
from engine.inference.predict import PredictionResult, predict_many
from engine.jobs.records import ArtifactKind, JobRecord, JobStatus
from engine.jobs.specs import (
    TRAIN_KIND_PREFIX,
    JobSpec,
    PredictSpec,
    TrainSpec,
    absolute_spec,
    spec_from_dict,
    spec_to_dict,
    validate,
)
from engine.jobs.store import JobStore
from engine.labels.cache import label_cache_dir
from engine.models.file import library_versions
from engine.paths import app_home, jobs_db_path
from engine.progress import CancelToken, EpochEvent, ProgressEvent, Reporter
from engine.training import TrainResult, checkpoint_owner, checkpoint_path_for, train
from engine.training.config import settings_hash

TURN_POLL_S = 0.5
CANCEL_POLL_S = 0.25
RESUMABLE = (JobStatus.INTERRUPTED, JobStatus.CANCELLED)
PREDICTION_ARTIFACTS = {
    "classes": ArtifactKind.CLASSES,
    "probabilities": ArtifactKind.PROBABILITIES,
    "qml": ArtifactKind.STYLE,
    "anomaly": ArtifactKind.ANOMALY,
    "anomaly_qml": ArtifactKind.STYLE,
    "anomaly_mask": ArtifactKind.ANOMALY_MASK,
    "anomaly_mask_qml": ArtifactKind.STYLE,
    "summary": ArtifactKind.SUMMARY,
    "polygons": ArtifactKind.POLYGONS,
}


@dataclass
class JobOutcome:
    """A finished job: its id, the result stored for it, and what the engine returned."""

    job_id: int
    result: dict[str, Any]
    training: TrainResult | None = None
    predictions: list[PredictionResult] = field(default_factory=list)


def open_store(home: str | Path | None = None) -> JobStore:
    """Open the job store of a data folder (see :func:`engine.paths.app_home`) after a possible crash.

    Every start goes through here, so a job left ``running`` by a process that died is marked
    ``interrupted`` before anyone lists, waits for or resumes it.
    """
    store = JobStore(jobs_db_path(app_home(home)))
    try:
        store.recover_interrupted()
    except BaseException:
        store.close()
        raise
    return store


def read_store(home: str | Path | None = None) -> JobStore:
    """Open the job store of a data folder for reading only, for views that poll it (the Jobs page
    reads it every second): no write transaction, and a newer ModelAI's store still reads."""
    return JobStore.for_reading(jobs_db_path(app_home(home)))


def submit(store: JobStore, spec: JobSpec, parent_job_id: int | None = None) -> int:
    """Validate a spec and queue it; return the new job's id.

    Raises:
        EngineError: the spec can never run (see :func:`engine.jobs.specs.validate`); no job is recorded.
    """
    spec = absolute_spec(spec)
    if isinstance(spec, TrainSpec) and spec.config.labels is not None and spec.config.label_cache is None:
        spec = TrainSpec(replace(spec.config, label_cache=label_cache_dir(store.path.parent)))
    validate(spec)
    return store.create_job(spec.kind, json.dumps(spec_to_dict(spec)), parent_job_id=parent_job_id)


def run(
    store: JobStore,
    spec: JobSpec,
    reporter: Reporter,
    cancel: CancelToken,
    parent_job_id: int | None = None,
) -> JobOutcome:
    """Queue a job and run it in this process once its turn comes (see :func:`run_job`)."""
    return run_job(store, submit(store, spec, parent_job_id), reporter, cancel)


def run_job(store: JobStore, job_id: int, reporter: Reporter, cancel: CancelToken) -> JobOutcome:
    """Wait for a queued job's turn, run it, and record how it went.

    Raises:
        JobCancelled: ``cancel`` was set, or the job was cancelled through the store; it is recorded
            as cancelled.
        EngineError: the job failed on bad input; the message and its causes are recorded.
        Exception: any other error, recorded with its traceback and re-raised as it is, with a note
            naming the job.
    """
    job = store.get_job(job_id)
    try:
        spec = spec_from_dict(job.kind, job.spec)
        device = _device_label(spec)
        _wait_for_turn(store, job_id, device, reporter, cancel)
        recorder = _StoreReporter(store, job_id, reporter, cancel)
        if isinstance(spec, TrainSpec):
            outcome = _train(store, job_id, spec, recorder, cancel)
        else:
            outcome = _predict(store, job_id, spec, recorder, cancel)
        outcome.result["warnings"] = recorder.warnings
        store.mark_succeeded(job_id, outcome.result)
        reporter.on_message("info", f"Recorded as job {job_id} (`modelai jobs show {job_id}`).")
        return outcome
    except JobCancelled as exc:
        _settle(store, job_id, JobStatus.CANCELLED, str(exc))
        _name_job(exc, store, job_id)
        raise
    except EngineError as exc:
        _settle(store, job_id, JobStatus.FAILED, str(exc), _cause_chain(exc))
        _name_job(exc, store, job_id)
        raise
    except Exception as exc:
        message = f"internal error: {type(exc).__name__}: {exc}"
        _settle(store, job_id, JobStatus.FAILED, message, traceback.format_exc())
        _name_job(exc, store, job_id)
        raise
    except BaseException:
        again = (
            f"`modelai jobs resume {job_id}`" if job.kind.startswith(TRAIN_KIND_PREFIX) else "run it again"
        )
        _settle(store, job_id, JobStatus.INTERRUPTED, f"ModelAI was stopped while the job ran: {again}")
        raise
    finally:
        release_freed_memory()


def rerun(store: JobStore, job_id: int) -> JobSpec:
    """The spec of an earlier job, to run it again as a new job (``parent_job_id=job_id``)."""
    job = store.get_job(job_id)
    return spec_from_dict(job.kind, job.spec)


def resume_spec(store: JobStore, job_id: int) -> TrainSpec:
    """A spec that continues an interrupted or cancelled training job from its own last checkpoint.

    A checkpoint continues only the job that wrote it (or, until the resumed run saves its first
    one, the job it resumes): a checkpoint folder shared by name with another run is never taken
    for this job's. A job stopped before its first checkpoint starts again from epoch 1, with the
    same settings (the returned spec has no ``resume``).

    Raises:
        JobStoreError: the job is not training, did not stop early, or its progress is lost (its
            checkpoint is gone or now belongs to another job).
    """
    job = store.get_job(job_id)
    spec = spec_from_dict(job.kind, job.spec)
    if not isinstance(spec, TrainSpec):
        raise JobStoreError(
            f"job {job_id} is a {job.kind} job; only training resumes: `modelai jobs rerun {job_id}`"
        )
    if job.status not in RESUMABLE:
        raise JobStoreError(
            f"job {job_id} is {job.status}; only an interrupted or cancelled training job resumes"
            f" (`modelai jobs rerun {job_id}` trains it again as a new job)"
        )
    checkpoint = job.checkpoint_path
    owner, written_with = _checkpoint_owner(checkpoint)
    if owner == job_id and written_with == settings_hash(spec.config) and checkpoint is not None:
        return TrainSpec(replace(spec.config, resume=checkpoint))
    if owner is not None and owner == job.parent_job_id and spec.config.resume == checkpoint:
        return spec
    if spec.config.resume is None and not store.epochs(job_id):
        return spec
    if owner is None:
        lost = f"left no checkpoint ({checkpoint or 'none recorded'}) to resume from"
    else:
        lost = f"has no checkpoint of its own: {checkpoint} now belongs to job {owner}"
    raise JobStoreError(f"job {job_id} {lost}: `modelai jobs rerun {job_id}` trains it again from the start")


def _checkpoint_owner(path: Path | None) -> tuple[int | None, str | None]:
    """The job and settings hash that wrote a checkpoint; Nones when it is missing or unreadable."""
    if path is None or not path.is_file():
        return None, None
    try:
        return checkpoint_owner(path)
    except EngineError:
        return None, None


class _StoreReporter:
    """Forwards events to the caller's reporter, stores epochs, and turns a stored cancel into the token."""

    def __init__(self, store: JobStore, job_id: int, reporter: Reporter, cancel: CancelToken) -> None:
        self._store = store
        self._job_id = job_id
        self._reporter = reporter
        self._cancel = cancel
        self._last_poll = float("-inf")
        self.warnings: list[str] = []

    def on_progress(self, event: ProgressEvent) -> None:
        self._reporter.on_progress(event)
        self._poll_cancel(force=False)

    def on_epoch(self, event: EpochEvent) -> None:
        self._store.record_epoch(
            self._job_id,
            event.epoch,
            event.train_loss,
            event.val_loss,
            event.metrics,
            event.lr,
            event.duration_s,
        )
        self._reporter.on_epoch(event)
        self._poll_cancel(force=True)

    def on_message(self, level: str, text: str) -> None:
        if level == "warning":
            self.warnings.append(text)
        self._reporter.on_message(level, text)

    def _poll_cancel(self, force: bool) -> None:
        """Ask the store at most every CANCEL_POLL_S: a read per batch of a tiny model would dominate."""
        now = time.monotonic()
        if not force and now - self._last_poll < CANCEL_POLL_S:
            return
        self._last_poll = now
        if self._store.is_cancel_requested(self._job_id):
            self._cancel.cancel()


def _wait_for_turn(
    store: JobStore, job_id: int, device: str, reporter: Reporter, cancel: CancelToken
) -> None:
    versions = library_versions()
    announced: int | None = None
    while True:
        cancel.raise_if_cancelled(f"Job {job_id}")
        blocker = store.start_if_next(job_id, device, versions)
        if blocker is None:
            return
        if blocker.id != announced:
            announced = blocker.id
            reporter.on_message("info", f"Waiting for job {blocker.id} ({_describe(blocker)}) to finish…")
        time.sleep(TURN_POLL_S)


def _train(
    store: JobStore, job_id: int, spec: TrainSpec, reporter: _StoreReporter, cancel: CancelToken
) -> JobOutcome:
    store.set_checkpoint(job_id, checkpoint_path_for(spec.config))
    result = train(spec.config, reporter, cancel, job_id=job_id)
    for entry in result.history:
        store.record_epoch(
            job_id,
            entry["epoch"],
            entry["train_loss"],
            entry["val_loss"],
            entry["metrics"],
            entry["lr"],
            entry["duration_s"],
        )
    store.add_artifact(job_id, ArtifactKind.MODEL, result.model_path)
    if result.checkpoint_path.is_file():
        store.add_artifact(job_id, ArtifactKind.CHECKPOINT, result.checkpoint_path)
    training = result.metadata.training
    summary = {
        "model": str(result.model_path),
        "monitor": training.get("monitor"),
        "best_metric": result.best_metric,
        "best_epoch": training.get("best_epoch"),
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "final_metrics": result.history[-1]["metrics"] if result.history else {},
        "settings_hash": settings_hash(spec.config),
    }
    return JobOutcome(job_id, summary, training=result)


def _predict(
    store: JobStore, job_id: int, spec: PredictSpec, reporter: _StoreReporter, cancel: CancelToken
) -> JobOutcome:
    if spec.cluster is not None:
        return _predict_on_cluster(store, job_id, spec, reporter, cancel)

    def record(prediction: PredictionResult) -> None:
        """Records a raster's outputs as soon as they are complete: a later failure keeps them."""
        _record_outputs(store, job_id, prediction)

    results = predict_many(
        spec.model, spec.rasters, spec.output_dir, spec.options, reporter, cancel, on_raster_done=record
    )
    summary = {
        "output_dir": str(spec.output_dir),
        "rasters": [{"raster": str(p.raster), "seconds": p.seconds, "summary": p.summary} for p in results],
    }
    return JobOutcome(job_id, summary, predictions=results)


def _predict_on_cluster(
    store: JobStore, job_id: int, spec: PredictSpec, reporter: _StoreReporter, cancel: CancelToken
) -> JobOutcome:
    """Each raster a task on a Dask cluster; the job's result grows as they finish (see `engine.cluster`)."""
    from engine.cluster.connect import import_distributed

    import_distributed()  # a ClusterError naming the extra where Dask is missing
    from engine.cluster.archive import ArchiveRun, predict_archive

    def record(run: ArchiveRun, prediction: PredictionResult | None) -> None:
        if prediction is not None:
            _record_outputs(store, job_id, prediction)
        store.record_result(job_id, run.summary())

    run = predict_archive(
        spec.cluster or "", spec.model, spec.rasters, spec.output_dir, spec.options, reporter, cancel, record
    )
    return JobOutcome(job_id, run.summary(), predictions=run.predictions())


def _record_outputs(store: JobStore, job_id: int, prediction: PredictionResult) -> None:
    for key, path in prediction.outputs.items():
        store.add_artifact(job_id, PREDICTION_ARTIFACTS[key], path)


def _device_label(spec: JobSpec) -> str:
    """``cuda:0 (NVIDIA H100)``, ``cpu (x86_64)`` or the cluster: the device recorded with the job
    (a cluster run's summaries name each raster's device)."""
    if isinstance(spec, PredictSpec) and spec.cluster is not None:
        return f"Dask cluster {spec.cluster}"
    device = resolve_device(spec.config.device if isinstance(spec, TrainSpec) else spec.options.device)
    return f"{device} ({describe_device(device).name})"


def _describe(job: JobRecord) -> str:
    owner = f"process {job.pid}" if job.pid is not None else "another process"
    return f"{job.kind}, {job.status} in {owner}"


def _settle(store: JobStore, job_id: int, status: JobStatus, message: str, detail: str = "") -> None:
    """Record how a job of this process ended, unless it already ended (cancelled while queued).

    A job another process runs is left alone: ``run_job`` on it fails without touching it.
    """
    job = store.get_job(job_id)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING) or job.pid != os.getpid():
        return
    if status is JobStatus.CANCELLED:
        store.mark_cancelled(job_id, message)
    elif status is JobStatus.FAILED:
        store.mark_failed(job_id, message, detail)
    else:
        store.mark_interrupted(job_id, message)


def _cause_chain(exc: BaseException) -> str:
    """The error and what caused it (``raise ... from``), one line each: enough to report a bug."""
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return "\n".join(f"{type(link).__name__}: {link}" for link in chain)


def _name_job(exc: BaseException, store: JobStore, job_id: int) -> None:
    exc.add_note(f"Recorded as job {job_id} in {store.path}: `modelai jobs show {job_id}` has the details.")
