"""Per-band statistics from a bounded sample, and the normalisation stored with each model.

Statistics come from a fixed number of random windows per raster, so a 20000² mosaic costs the same
as a 2000² one and never sits whole in memory. Only valid pixels count: a nodata collar or a
-3.4e38 fill value would otherwise poison every mean. The resulting `Normalization` is saved in the
model file and applied unchanged at inference, so a model sees the same numbers it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.windows import Window

from engine.errors import RasterError
from engine.rasters.read import RasterInfo, open_raster, read_block

METHODS = ("standard", "percentile")
SAMPLE_WINDOW = 256
MAX_PIXELS_PER_BAND = 2_000_000
MIN_SCALE = 1e-6


@dataclass(frozen=True)
class BandStatistics:
    """Per-band summary of valid pixels in the sample (lists index bands in the chosen order)."""

    mean: list[float]
    std: list[float]
    low: list[float]
    high: list[float]
    valid_pixels: int
    sampled_pixels: int

    @property
    def valid_fraction(self) -> float:
        return self.valid_pixels / self.sampled_pixels if self.sampled_pixels else 0.0


@dataclass(frozen=True)
class Normalization:
    """``(x - offset) / scale`` per band; the percentile method also clips to [-1, 1].

    ``constant_bands`` lists band positions whose sample had no variance: they are kept (scale 1) so
    the arithmetic stays finite, and reported so the user knows they carry no information.
    """

    method: str
    offset: list[float]
    scale: list[float]
    clip: bool
    constant_bands: list[int]
    percentiles: tuple[float, float] = (2.0, 98.0)

    @classmethod
    def from_statistics(
        cls, stats: BandStatistics, method: str = "standard", percentiles: tuple[float, float] = (2.0, 98.0)
    ) -> Normalization:
        if method not in METHODS:
            raise ValueError(f"Unknown normalisation {method!r}; choose one of {', '.join(METHODS)}.")
        if method == "standard":
            offset = list(stats.mean)
            spread = list(stats.std)
        else:
            offset = [(lo + hi) / 2 for lo, hi in zip(stats.low, stats.high, strict=True)]
            spread = [(hi - lo) / 2 for lo, hi in zip(stats.low, stats.high, strict=True)]
        constant = [index for index, value in enumerate(spread) if not value > MIN_SCALE]
        scale = [1.0 if index in constant else value for index, value in enumerate(spread)]
        return cls(method, offset, scale, method == "percentile", constant, percentiles)

    def apply(self, data: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Normalises (bands, ...) float data in place-safe fashion; invalid pixels become 0."""
        offset = np.asarray(self.offset, dtype=np.float32).reshape((-1,) + (1,) * (data.ndim - 1))
        scale = np.asarray(self.scale, dtype=np.float32).reshape(offset.shape)
        if data.shape[0] != offset.shape[0]:
            raise ValueError(f"Normalisation has {offset.shape[0]} bands, data has {data.shape[0]}.")
        out = np.subtract(data, offset, dtype=np.float32)
        out /= scale
        if self.clip:
            np.clip(out, -1.0, 1.0, out=out)
        if not np.isfinite(out).all():  # one cheap pass; replacing is four times dearer
            np.nan_to_num(out, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        if valid is not None:
            out[..., ~valid] = 0.0
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "offset": self.offset,
            "scale": self.scale,
            "clip": self.clip,
            "constant_bands": self.constant_bands,
            "percentiles": list(self.percentiles),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        """Rebuilds a stored normalisation; raises ValueError on anything malformed."""
        try:
            offset = [float(v) for v in data["offset"]]
            scale = [float(v) for v in data["scale"]]
            result = cls(
                method=str(data["method"]),
                offset=offset,
                scale=scale,
                clip=bool(data["clip"]),
                constant_bands=[int(v) for v in data.get("constant_bands", [])],
                percentiles=tuple(float(v) for v in data.get("percentiles", (2.0, 98.0))),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed normalisation: {exc}") from exc
        if result.method not in METHODS or len(offset) != len(scale) or not offset:
            raise ValueError("normalisation must have a known method and one offset and scale per band")
        if not all(np.isfinite(offset)) or not all(np.isfinite(scale)) or min(scale) <= 0:
            raise ValueError("normalisation offsets must be finite and scales positive")
        return result


def sample_windows(
    info: RasterInfo, count: int, rng: np.random.Generator, size: int = SAMPLE_WINDOW
) -> list[Window]:
    """Random windows covering a raster; the whole raster as one window when it is small."""
    width, height = min(size, info.width), min(size, info.height)
    if width == info.width and height == info.height:
        return [Window(0, 0, width, height)]
    cols = rng.integers(0, info.width - width + 1, size=count)
    rows = rng.integers(0, info.height - height + 1, size=count)
    return [Window(int(c), int(r), width, height) for c, r in zip(cols, rows, strict=True)]


def compute_statistics(
    infos: Sequence[RasterInfo],
    bands: Sequence[int],
    windows_per_raster: int = 16,
    percentiles: tuple[float, float] = (2.0, 98.0),
    seed: int = 0,
) -> BandStatistics:
    """Samples valid pixels from every raster and summarises them per band.

    Raises:
        RasterError: no valid pixel was found in any sampled window.
    """
    rng = np.random.default_rng(seed)
    chunks: list[np.ndarray] = []
    sampled = 0
    valid_total = 0
    budget = max(1, MAX_PIXELS_PER_BAND // max(1, len(infos) * windows_per_raster))
    for info in infos:
        with open_raster(info.path) as dataset:
            for window in sample_windows(info, windows_per_raster, rng):
                block = read_block(dataset, window, bands, info)
                sampled += block.valid.size
                valid_total += int(block.valid.sum())
                pixels = block.data[:, block.valid]
                if pixels.shape[1] > budget:
                    pixels = pixels[:, rng.choice(pixels.shape[1], budget, replace=False)]
                chunks.append(pixels.astype(np.float64))
    values = np.concatenate(chunks, axis=1) if chunks else np.empty((len(bands), 0))
    if values.shape[1] == 0:
        names = ", ".join(str(info.path) for info in infos)
        raise RasterError(
            f"{names}: every sampled pixel is nodata or NaN. Check the nodata value and the bands, "
            "or choose rasters that contain data."
        )
    low, high = np.percentile(values, percentiles, axis=1)
    return BandStatistics(
        mean=values.mean(axis=1).tolist(),
        std=values.std(axis=1).tolist(),
        low=low.tolist(),
        high=high.tolist(),
        valid_pixels=valid_total,
        sampled_pixels=sampled,
    )


def describe_constant_bands(
    normalization: Normalization, bands: Sequence[int], paths: Sequence[Path]
) -> str | None:
    """A warning text when some bands had no variance in the training sample, else None."""
    if not normalization.constant_bands:
        return None
    names = ", ".join(str(bands[index]) for index in normalization.constant_bands)
    files = ", ".join(path.name for path in paths[:3])
    return (
        f"Band(s) {names} of {files} are constant in the sampled pixels: they carry no information "
        "and are kept unscaled. Leave them out with --bands if they are not needed."
    )
