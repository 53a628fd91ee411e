"""Streaming tiled prediction of rasters of any size into georeferenced outputs.

A raster is walked strip by strip (one row of overlapping tiles): tiles are read in batches (ahead,
in a thread, while a GPU computes; see `engine.tile_reader`), tile outputs are blended with smooth
weights into a strip buffer, and rows are written as soon as no later tile touches them. Memory
therefore grows with the raster's width, never its area. Everything that can be checked before
work is checked first, for every input (`engine.prediction_checks`).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS

from engine.device import autocast_dtype, describe_device, resolve_device
from engine.errors import EngineError, RasterError
from engine.model_file import load_model, read_metadata
from engine.model_metadata import ModelMetadata
from engine.normalize import Normalization
from engine.outputs import OutputSet, summary_json
from engine.prediction_checks import check_compatibility, check_outputs
from engine.prediction_heads import (
    TILE_VALUES,
    AnomalyHead,
    PredictionHead,
    SegmentationHead,
    check_classes,
)
from engine.progress import CancelToken, ProgressEvent, Reporter
from engine.raster import RasterInfo, read_info
from engine.tile_forward import TileForward
from engine.tile_reader import TileReader
from engine.tiling import WEIGHT_MODES, StripBlender, TileGrid

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

    model_path: Path
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
) -> PredictionResult:
    """Predicts one raster; see `predict_many`."""
    return predict_many(
        model_path, [raster_path], output_dir, options, reporter, cancel, weight_mode=weight_mode
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
) -> list[PredictionResult]:
    """Predicts every raster with one model, loaded once, into ``output_dir``.

    Every input and output is checked before the first raster starts. Each raster's outputs appear
    together when it is complete; a cancel or an error removes the unfinished ones (finished
    rasters keep theirs). ``weight_mode="flat"`` blends by plain averaging, for comparisons only.

    Raises:
        ModelFileError, RasterError, BandMismatchError, DeviceError, OutputError: bad input, with
            the file and the fix in the message.
        JobCancelled: ``cancel`` was set.
    """
    model_path, output_dir = Path(model_path), Path(output_dir)
    raster_paths = [Path(path) for path in raster_paths]
    _check_options(options)
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"Unknown weight mode {weight_mode!r}; choose one of {', '.join(WEIGHT_MODES)}.")
    metadata = read_metadata(model_path)
    if metadata.task == "segmentation":
        check_classes(metadata, model_path)
    if options.tta and metadata.task == "anomaly":
        raise EngineError(
            f"--tta is for segmentation models; {model_path.name} is an anomaly model, whose threshold "
            "was calibrated on single passes (averaged errors would fall below it). Predict without --tta."
        )
    threshold = _threshold(metadata, options, reporter)
    device = resolve_device(options.device)
    autocast = autocast_dtype(device, options.precision)
    for raster_path in raster_paths:
        for warning in check_compatibility(metadata, raster_path, f"model {model_path.name}"):
            reporter.on_message("warning", warning)
    names = check_outputs(metadata, raster_paths, output_dir, options.probabilities, options.overwrite)
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
        model_path=model_path,
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
    return [_predict_one(session, path, names[path]) for path in raster_paths]


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


def _threshold(metadata: ModelMetadata, options: PredictOptions, reporter: Reporter) -> float | None:
    if metadata.task != "anomaly":
        if options.threshold is not None:
            reporter.on_message("warning", "--threshold only applies to anomaly models; it is ignored.")
        return None
    if options.threshold is not None:
        return float(options.threshold)
    return float(metadata.anomaly["threshold"]) if metadata.anomaly else None


def _predict_one(session: _Session, raster_path: Path, names: dict[str, str]) -> PredictionResult:
    started = time.perf_counter()
    info = read_info(raster_path)
    options = session.options
    grid = TileGrid(
        info.height, info.width, options.tile, options.overlap, session.size_multiple, session.weight_mode
    )
    paths = {key: session.output_dir / name for key, name in names.items()}
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_BYTES), OutputSet(session.output_dir) as outputs:
        head: PredictionHead
        if session.metadata.task == "segmentation":
            head = SegmentationHead(session.metadata, outputs, paths, info)
        else:
            head = AnomalyHead(float(session.threshold), outputs, paths, info)
        valid_pixels = _stream(session, info, grid, head)
        if valid_pixels == 0:
            raise RasterError(f"{raster_path}: every pixel is nodata, so there is nothing to predict.")
        summary = _summary(session, info, grid, head, names, time.perf_counter() - started)
        outputs.text(paths["summary"], summary_json(summary))
        outputs.commit()
    return PredictionResult(raster_path, paths, summary, time.perf_counter() - started)


def _stream(session: _Session, info: RasterInfo, grid: TileGrid, head: PredictionHead) -> int:
    """Predicts every tile and hands finished rows to ``head``; returns the number of valid pixels."""
    blender = StripBlender(grid, head.channels)
    started = time.perf_counter()
    done = valid_pixels = 0
    bands, normalization = session.metadata.bands, session.normalization
    forward = session.forward
    batch_size = forward.tiles_per_pass(grid.tile_height * grid.tile_width)
    prefetch = forward.device.type != "cpu"  # see engine.tile_reader: on a CPU the thread slows it
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
    names: dict[str, str],
    seconds: float,
) -> dict[str, Any]:
    a, b, _, d, e, _ = info.transform
    pixel_area = abs(a * e - b * d)
    return {
        "raster": str(info.path),
        "model": str(session.model_path),
        "task": session.metadata.task,
        "width": info.width,
        "height": info.height,
        "crs": info.crs,
        "pixel_size": list(info.pixel_size),
        "pixel_area": pixel_area,
        "area_unit": _area_unit(info),
        **head.summary(pixel_area),
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


def _area_unit(info: RasterInfo) -> str:
    if info.crs_wkt is None:
        return "square map units (no CRS)"
    unit = CRS.from_wkt(info.crs_wkt).units_factor[0]
    return f"square {unit}s" if unit in ("metre", "degree", "foot") else f"square {unit}"
