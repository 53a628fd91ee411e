"""What runs on a Dask worker: the check that it sees the run's paths, and the prediction of one raster.

A worker predicts with the same `engine.inference.predict.predict_raster` as a local run, so outputs,
summaries and their temporary names are the same. The model file arrives once per worker as bytes
(scattered by the client); the worker writes it into its own folder under its SHA-256, checks the
digest, and `predict_raster` checks the file as it checks any model. A cancel set by the client
(a Dask ``Event`` named for the run) is seen between batches of tiles, as a local cancel is.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import torch
from distributed import Event, get_worker

from engine.cluster.completed import finished_prediction
from engine.errors import ClusterError, EngineError
from engine.inference.predict import PredictionResult, PredictOptions, predict_raster
from engine.models.file import read_metadata
from engine.progress import CancelToken, RecordingReporter
from engine.sources.gdal_paths import is_virtual

# How often a task asks the scheduler whether the run was cancelled (a round trip each time).
CANCEL_POLL_S = 0.25
MODELS_FOLDER = "modelai-models"
SHOWN_PATHS = 3


@dataclass(frozen=True)
class RasterToCheck:
    """A raster and its size as the client sees it (None for GDAL virtual paths and missing files)."""

    path: str
    size: int | None


@dataclass(frozen=True)
class PathReport:
    """What one worker found when it looked for the run's paths; no ``problems`` when it sees all."""

    host: str
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RasterDone:
    """How a raster's task ended on a worker: its prediction, or the engine's error (bad input, which
    is an answer, not a crash of the task), the warnings it met and which worker it was."""

    prediction: PredictionResult | None
    error: str | None
    warnings: list[str]
    worker: str


def inspect_paths(rasters: list[RasterToCheck], output_dir: str, marker_name: str, token: str) -> PathReport:
    """Checks, on this worker, that every raster is the client's file and that the output folder is
    the client's folder (it holds the check file the client wrote) and is writable."""
    plain = [raster for raster in rasters if not is_virtual(raster.path)]
    missing = [raster.path for raster in plain if not Path(raster.path).is_file()]
    missing_paths = set(missing)
    seen = [raster for raster in plain if raster.path not in missing_paths]
    differ = [
        raster.path
        for raster in seen
        if raster.size is not None and Path(raster.path).stat().st_size != raster.size
    ]
    problems = []
    if missing:
        problems.append(f"cannot see {_some(missing)}")
    if differ:
        problems.append(f"sees other files than the client at {_some(differ)} (their sizes differ)")
    folder = Path(output_dir)
    try:
        marker = (folder / marker_name).read_text()
    except OSError:
        marker = None
    if not folder.is_dir():
        problems.append(f"cannot see the output folder {folder}")
    elif marker != token:
        problems.append(
            f"sees another folder at {folder} than the client (the client's check file is not there)"
        )
    else:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            problems.append(f"cannot write in the output folder {folder} ({exc.strerror})")
    return PathReport(socket.gethostname(), problems)


def _some(paths: list[str]) -> str:
    shown = ", ".join(paths[:SHOWN_PATHS])
    return shown + (f" and {len(paths) - SHOWN_PATHS} more" if len(paths) > SHOWN_PATHS else "")


class SharedCancelToken(CancelToken):
    """A cancel token that the client sets from its machine: a Dask ``Event`` of the run's name,
    asked at most every CANCEL_POLL_S (the engine asks once per batch of tiles)."""

    def __init__(self, event_name: str) -> None:
        super().__init__()
        self._shared = Event(event_name)
        self._next_check = 0.0

    @property
    def cancelled(self) -> bool:
        self._refresh()
        return super().cancelled

    def raise_if_cancelled(self, what: str = "The job") -> None:
        self._refresh()
        super().raise_if_cancelled(what)

    def _refresh(self) -> None:
        now = time.monotonic()
        if now >= self._next_check and not super().cancelled:
            self._next_check = now + CANCEL_POLL_S
            if self._shared.is_set():
                self.cancel()


def predict_task(
    model: bytes,
    model_sha256: str,
    model_path: str,
    raster: str,
    output_dir: str,
    options: PredictOptions,
    cancel_event: str,
    torch_threads: int | None,
) -> RasterDone:
    """Predicts one raster on this worker (the task of one raster).

    ``model_path`` is the model file on the client, which summaries name; ``torch_threads`` is this
    worker's share of its machine's cores (None: as the worker was started). Bad input comes back as
    the result's ``error``; any other exception is raised to the client, with its traceback.
    """
    raster_path = Path(raster)
    worker = get_worker()
    where = f"{worker.address} ({socket.gethostname()})"
    reporter = RecordingReporter()
    try:
        cancel = SharedCancelToken(cancel_event)
        cancel.raise_if_cancelled(f"Prediction of {raster_path.name}")
        local_model = _model_copy(model, model_sha256, Path(model_path).name, Path(worker.local_directory))
        earlier = _earlier_prediction(local_model, model_sha256, raster_path, Path(output_dir), options)
        if earlier is not None:
            return RasterDone(earlier, None, [], where)
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        prediction = predict_raster(
            local_model,
            raster_path,
            Path(output_dir),
            options,
            reporter,
            cancel,
            recorded_model=Path(model_path),
        )
    except EngineError as exc:
        return RasterDone(None, str(exc), reporter.warnings(), where)
    return RasterDone(prediction, None, reporter.warnings(), where)


def _earlier_prediction(
    model: Path, model_sha256: str, raster: Path, output_dir: Path, options: PredictOptions
) -> PredictionResult | None:
    """This raster's complete outputs made with this model, which only an earlier try of this task
    can have written (the client skipped the rasters that were complete): Dask runs a task again
    when its worker died before the client had its result."""
    if options.overwrite:
        return None
    return finished_prediction(read_metadata(model), raster, output_dir, options, model_sha256)


def _model_copy(model: bytes, sha256: str, name: str, folder: Path) -> Path:
    """The model's bytes as a file of the same name in this worker's folder, written once per worker
    (under a temporary name, then renamed) after checking that they arrived whole."""
    path = folder / MODELS_FOLDER / sha256 / name
    if path.is_file():
        return path
    if hashlib.sha256(model).hexdigest() != sha256:
        raise ClusterError(
            f"the model {name} arrived damaged on worker {socket.gethostname()} (its SHA-256 differs from "
            "the client's file): run again, and check the network if it happens again."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    temporary.write_bytes(model)
    temporary.replace(path)
    return path
