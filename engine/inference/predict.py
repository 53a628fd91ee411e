"""Streaming tiled prediction of rasters of any size into georeferenced outputs.

A raster is walked strip by strip (one row of overlapping tiles): tiles are read in batches (ahead,
in a thread, while a GPU computes; see `engine.inference.reader`), tile outputs are blended with smooth
weights into a strip buffer, and rows are written as soon as no later tile touches them. Memory
therefore grows with the raster's width, never its area. Everything that can be checked before
work is checked first, for every input (`engine.inference.checks`).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch

from engine.device import autocast_dtype, describe_device, resolve_device
from engine.errors import EngineError, RasterError
from engine.geodesy.pixel_areas import PixelAreas
from engine.inference.checks import check_compatibility, check_free_space, check_outputs
from engine.inference.forward import TileForward
from engine.inference.grid import WEIGHT_MODES, StripBlender, TileGrid
from engine.inference.heads import (
    TILE_VALUES,
    AnomalyHead,
    PredictionHead,
    SegmentationHead,
    check_classes,
)
from engine.inference.outputs import OutputSet, summary_json
from engine.inference.reader import TileReader
from engine.models.file import load_model, read_metadata
from engine.models.metadata import ModelMetadata
from engine.output_metadata.provenance import file_sha256, provenance_tags
from engine.profiles.checks import model_ground_pixel_size
from engine.progress import CancelToken, ProgressEvent, Reporter
from engine.rasters.normalize import Normalization
from engine.rasters.read import RasterInfo, read_info
from engine.sources.resampled import resampled_shape, write_resampled_vrt
from engine.vectorize.prediction import (
    check_polygon_options,
    check_polygon_outputs,
    write_prediction_polygons,
)

# GDAL's block cache defaults to 5 % of RAM and would fill with decoded input blocks of a large
# raster; 64 MB holds several strips of blocks, enough for the overlap between strips.
GDAL_CACHE_BYTES = 64 * 1024 * 1024
PRECISION_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


@dataclass
class PredictOptions:
    """How to predict; the defaults suit a U-Net on a CPU or a GPU.

    An overlap of 32 pixels covers the border effects of a depth-4 U-Net (two pixels of its
    deepest level): tiled class probabilities stay within 0.00003 of one whole-raster pass on
    average (64 pixels: 0.00001; the prototype's flat averaging: 0.0034), while 64 would cost 15 %
    more computation at the default tile.
    """

    tile: int = 512
    overlap: int = 32
    batch_size: int = 8
    device: str = "auto"
    precision: str = "auto"
    probabilities: bool = False
    threshold: float | None = None
    tta: bool = False
    overwrite: bool = False
    polygons: bool = False
    min_area: float = 0.0
    simplify: float = 0.0
    # The raster's bands to read in place of the model's (``--bands``), one per model band.
    bands: list[int] | None = None
    # Read rasters at the model's pixel size (GDAL's resampling) instead of refusing very different ones.
    resample: bool = False
    # The nodata value of rasters that declare none (``--nodata``).
    nodata: float | None = None


@dataclass
class PredictionResult:
    """The outputs of one raster by key (``classes``, ``probabilities``, ``qml``, ``anomaly``,
    ``anomaly_mask``, ``summary``), the summary that was written, and the wall time."""

    raster: Path
    outputs: dict[str, Path]
    summary: dict[str, Any]
    seconds: float


@dataclass
class _Session:
    """What every raster of one `predict_many` call shares: the loaded model and the settings."""

    model_path: Path  # as the outputs name it (see ``recorded_model``)
    model_sha256: str
    metadata: ModelMetadata
    normalization: Normalization
    forward: TileForward
    size_multiple: int
    precision: str
    device: dict[str, Any]
    threshold: float | None
    options: PredictOptions
    output_dir: Path
    weight_mode: str
    reporter: Reporter
    cancel: CancelToken


def predict_raster(
    model_path: Path,
    raster_path: Path,
    output_dir: Path,
    options: PredictOptions,
    reporter: Reporter,
    cancel: CancelToken,
    *,
    weight_mode: str = "hann",
    recorded_model: Path | None = None,
) -> PredictionResult:
    """Predicts one raster; see `predict_many`."""
    return predict_many(
        model_path,
        [raster_path],
        output_dir,
        options,
        reporter,
        cancel,
        weight_mode=weight_mode,
        recorded_model=recorded_model,
    )[0]


def predict_many(
    model_path: Path,
    raster_paths: list[Path],
    output_dir: Path,
    options: PredictOptions,
    reporter: Reporter,
    cancel: CancelToken,
    *,
    weight_mode: str = "hann",
    on_raster_done: Callable[[PredictionResult], None] | None = None,
    recorded_model: Path | None = None,
) -> list[PredictionResult]:
    """Predicts every raster with one model, loaded once, into ``output_dir``.

    Every input and output is checked before the first raster starts. Each raster's outputs appear
    together when it is complete; a cancel or an error removes the unfinished ones (finished
    rasters keep theirs, and ``on_raster_done`` hears of each as it finishes, so a caller can record
    them even when a later raster fails). ``weight_mode="flat"`` blends by plain averaging, for
    comparisons only. ``recorded_model`` is the model path the summaries name, where ``model_path``
    is a copy of it (a cluster worker's).

    Raises:
        ModelFileError, RasterError, BandMismatchError, DeviceError, OutputError: bad input, with
            the file and the fix in the message.
        JobCancelled: ``cancel`` was set.
    """
    model_path, output_dir = Path(model_path), Path(output_dir)
    raster_paths = [Path(path) for path in raster_paths]
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"Unknown weight mode {weight_mode!r}; choose one of {', '.join(WEIGHT_MODES)}.")
    metadata = check_prediction_settings(model_path, options)
    threshold = _threshold(metadata, options, reporter)
    device = resolve_device(options.device)
    autocast = autocast_dtype(device, options.precision)
    for raster_path in raster_paths:
        name = f"model {model_path.name}"
        found = check_compatibility(
            metadata, raster_path, name, options.bands, options.resample, options.nodata
        )
        for warning in found:
            reporter.on_message("warning", warning)
    names = check_outputs(metadata, raster_paths, output_dir, options.probabilities, options.overwrite)
    if options.polygons:
        polygon_names = check_polygon_outputs(metadata, raster_paths, output_dir, options.overwrite)
        for path, name in polygon_names.items():
            names[path]["polygons"] = name
    for warning in check_free_space(metadata, raster_paths, output_dir, options.probabilities):
        reporter.on_message("warning", warning)
    model, metadata = load_model(model_path, device)
    size_multiple = int(getattr(model, "size_multiple", 1))
    if options.tile % size_multiple:
        raise EngineError(
            f"--tile {options.tile} is not a multiple of {size_multiple}, which {model_path.name} needs; "
            f"use {options.tile - options.tile % size_multiple or size_multiple}."
        )
    forward = TileForward(
        model, device, autocast, options.batch_size, TILE_VALUES[metadata.task], reporter, options.tta
    )
    info = describe_device(device)
    session = _Session(
        model_path=Path(recorded_model or model_path),
        model_sha256=file_sha256(model_path),
        metadata=metadata,
        normalization=Normalization.from_dict(metadata.normalization),
        forward=forward,
        size_multiple=size_multiple,
        precision=PRECISION_NAMES[autocast],
        device={"kind": info.kind, "name": info.name},
        threshold=threshold,
        options=options,
        output_dir=output_dir,
        weight_mode=weight_mode,
        reporter=reporter,
        cancel=cancel,
    )
    results = []
    for path in raster_paths:
        results.append(_predict_one(session, path, names[path]))
        if on_raster_done is not None:
            on_raster_done(results[-1])
    return results


def check_prediction_settings(model_path: Path, options: PredictOptions) -> ModelMetadata:
    """Checks the model file and the options together, before any raster: a cluster run does it
    once on its client, so that a bad setting is not met again by every raster.

    Raises:
        ModelFileError, EngineError: the model cannot be used, or an option is out of range or does
            not fit the model's task.
    """
    _check_options(options)
    metadata = read_metadata(model_path)
    if metadata.task == "segmentation":
        check_classes(metadata, model_path)
    if options.tta and metadata.task == "anomaly":
        raise EngineError(
            f"--tta is for segmentation models; {model_path.name} is an anomaly model, whose threshold "
            "was calibrated on single passes (averaged errors would fall below it). Predict without --tta."
        )
    if options.tta and trained_without_turns(metadata):
        raise EngineError(
            f"--tta averages each tile over its flips and quarter turns, but {model_path.name} was trained "
            "without them (its classes keep one orientation, such as shadows that fall one way), so the "
            "turned views are ones it never learned and spoil the map (on real building data they cut "
            "its IoU by more than half). Predict without --tta, or train with --augment for a model that "
            "--tta can help."
        )
    return metadata


def trained_without_turns(metadata: ModelMetadata) -> bool:
    """Whether the model's record says it trained without random flips and quarter turns.

    Runs since flips became automatic record the choice itself; earlier ones only their setting, which
    was a plain on or off then. A model with neither (not trained here) is not refused.
    """
    training = metadata.training
    augment = training.get("augment", (training.get("config") or {}).get("augment"))
    return augment is False


def _check_options(options: PredictOptions) -> None:
    if options.tile < 16:
        raise EngineError(f"--tile {options.tile} is too small; use at least 16 (512 is a good default).")
    if not 0 <= options.overlap <= options.tile // 2:
        raise EngineError(
            f"--overlap {options.overlap} must be between 0 and half the tile ({options.tile // 2})."
        )
    if options.batch_size < 1:
        raise EngineError(f"--batch-size {options.batch_size} must be at least 1.")
    if options.threshold is not None and not math.isfinite(options.threshold):
        raise EngineError(f"--threshold {options.threshold} must be a finite number.")
    check_polygon_options(options.polygons, options.min_area, options.simplify)


def _threshold(metadata: ModelMetadata, options: PredictOptions, reporter: Reporter) -> float | None:
    """The anomaly threshold to apply; warns about each option the model's task ignores."""
    if metadata.task != "anomaly":
        if options.threshold is not None:
            reporter.on_message("warning", "--threshold only applies to anomaly models; it is ignored.")
        return None
    if options.probabilities:
        reporter.on_message(
            "warning",
            "--probabilities only applies to segmentation models; an anomaly model writes its heat map "
            "and mask only, so it is ignored.",
        )
    if options.threshold is not None:
        return float(options.threshold)
    return float(metadata.anomaly["threshold"]) if metadata.anomaly else None


def _predict_one(session: _Session, raster_path: Path, names: dict[str, str]) -> PredictionResult:
    started = time.perf_counter()
    options = session.options
    tags = provenance_tags(
        session.model_path, session.model_sha256, session.metadata, raster_path, session.threshold
    )
    with (
        tempfile.TemporaryDirectory(prefix="modelai-") as scratch,
        rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES),
        OutputSet(session.output_dir, tags) as outputs,
    ):
        info = _read_on_model_grid(session, read_info(raster_path, options.nodata), Path(scratch))
        grid = TileGrid(
            info.height, info.width, options.tile, options.overlap, session.size_multiple, session.weight_mode
        )
        paths = {key: session.output_dir / name for key, name in names.items()}
        head: PredictionHead
        areas = PixelAreas(info)
        if session.metadata.task == "segmentation":
            head = SegmentationHead(session.metadata, outputs, paths, info, areas)
        else:
            head = AnomalyHead(float(session.threshold), outputs, paths, info, areas)
        valid_pixels = _stream(session, info, grid, head)
        if valid_pixels == 0:
            raise RasterError(f"{raster_path}: every pixel is nodata, so there is nothing to predict.")
        summary = _summary(session, info, grid, head, areas, names, time.perf_counter() - started)
        summary |= {"raster": str(raster_path), "resampled": info.path != raster_path}
        outputs.text(paths["summary"], summary_json(summary))
        outputs.commit()
        if options.polygons:
            session.reporter.on_message("info", f"Writing the polygons of {raster_path.name}...")
            write_prediction_polygons(
                session.metadata, paths, info, paths["polygons"], options.min_area, options.simplify
            )
    return PredictionResult(raster_path, paths, summary, time.perf_counter() - started)


def _read_on_model_grid(session: _Session, info: RasterInfo, scratch: Path) -> RasterInfo:
    """``info`` itself, or with ``--resample`` a VRT of it on the model's pixel size (in ``scratch``)."""
    target = model_ground_pixel_size(session.metadata) if session.options.resample else None
    shape = resampled_shape(info, target) if target else None
    if shape is None:
        return info
    return read_info(write_resampled_vrt(info, shape, scratch / f"{info.path.stem}.vrt"))


def _stream(session: _Session, info: RasterInfo, grid: TileGrid, head: PredictionHead) -> int:
    """Predicts every tile and hands finished rows to ``head``; returns the number of valid pixels."""
    blender = StripBlender(grid, head.channels)
    started = time.perf_counter()
    done = valid_pixels = 0
    bands, normalization = session.options.bands or session.metadata.bands, session.normalization
    forward = session.forward
    batch_size = forward.tiles_per_pass(grid.tile_height * grid.tile_width)
    prefetch = forward.device.type != "cpu"  # see engine.inference.reader: on a CPU the thread slows it
    with TileReader(info, grid, bands, normalization, batch_size, prefetch) as reader:
        for batch in reader:
            session.cancel.raise_if_cancelled(f"Prediction of {info.path.name}")
            outputs = iter(forward(batch.inputs) if batch.inputs is not None else [])
            for tile, valid, busy in zip(batch.tiles, batch.valid, batch.busy, strict=True):
                if tile.strip != blender.strip:
                    valid_pixels += _write_finished_rows(blender, head)
                blender.add(tile, next(outputs) if busy else None, valid)
            done += len(batch.tiles)
            _report_progress(session, info, done, len(grid), started)
    return valid_pixels + _write_finished_rows(blender, head)


def _write_finished_rows(blender: StripBlender, head: PredictionHead) -> int:
    """Hands the open strip's finished rows to ``head``; returns how many of their pixels are valid."""
    valid_pixels = 0
    for row_off, values, valid in blender.finish_strip():
        head.write(row_off, values, valid)
        valid_pixels += int(np.count_nonzero(valid))
    return valid_pixels


def _report_progress(session: _Session, info: RasterInfo, done: int, total: int, started: float) -> None:
    elapsed = max(time.perf_counter() - started, 1e-9)
    megapixels = info.width * info.height / 1e6 * done / total
    eta = elapsed / done * (total - done) if done else None
    session.reporter.on_progress(
        ProgressEvent(
            stage="predict",
            done=done,
            total=total,
            rate=megapixels / elapsed,
            rate_unit="MPix/s",
            eta_s=eta,
            label=info.path.name,
        )
    )


def _summary(
    session: _Session,
    info: RasterInfo,
    grid: TileGrid,
    head: PredictionHead,
    areas: PixelAreas,
    names: dict[str, str],
    seconds: float,
) -> dict[str, Any]:
    return {
        "raster": str(info.path),
        "model": str(session.model_path),
        "task": session.metadata.task,
        "width": info.width,
        "height": info.height,
        "crs": info.crs,
        "pixel_size": list(info.pixel_size),
        "pixel_area": areas.centre_pixel_area(),
        "area_unit": areas.unit,
        "area_method": areas.method,
        **head.summary(),
        "tile": [grid.tile_height, grid.tile_width],
        "overlap": grid.overlap,
        "tiles": len(grid),
        "batch_size": session.forward.batch_size,
        "device": session.device,
        "precision": session.precision,
        "seconds": seconds,
        "megapixels_per_second": info.width * info.height / 1e6 / max(seconds, 1e-9),
        "outputs": names,
    }
