"""Small, fast previews of rasters of any size, and their stretch to displayable RGBA.

A 20000×20000 mosaic must show in a fraction of a second and never sit whole in memory, so a preview
is one decimated read (``out_shape``) bounded to about 1024 pixels on the long side; GDAL serves it
from the raster's overviews when it has them. The percentile stretch and the band composite live here
rather than in the widget so that they are tested without Qt, and so that nodata becomes transparent
(alpha 0) by one rule for every view.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.windows import Window

from engine.errors import BandMismatchError, RasterError
from engine.rasters.read import RasterInfo, check_bands, first_line, open_raster, pixel_validity

PREVIEW_MAX_SIDE = 1024
DEFAULT_PERCENTILES = (2.0, 98.0)
RESAMPLING = {"average": Resampling.average, "nearest": Resampling.nearest}
STRETCH_SAMPLE = 262_144


@dataclass(frozen=True)
class Preview:
    """A decimated read of some bands of a raster.

    ``data`` is float32 (bands, rows, cols) with 0 where ``valid`` (rows, cols) is False;
    ``transform`` maps preview pixels to map coordinates, ``info.transform`` full-resolution ones.
    """

    info: RasterInfo
    bands: tuple[int, ...]
    data: np.ndarray
    valid: np.ndarray
    transform: Affine

    @property
    def shape(self) -> tuple[int, int]:
        """Rows and columns of the preview."""
        return (self.data.shape[1], self.data.shape[2])

    @property
    def decimation(self) -> float:
        """Full-resolution pixels per preview pixel along the long side (1.0 when not decimated)."""
        return max(self.info.width / self.shape[1], self.info.height / self.shape[0])

    def band_values(self, col: float, row: float) -> tuple[float, ...] | None:
        """Values of every preview band at a full-resolution pixel position; None outside or invalid."""
        if not (0 <= col < self.info.width and 0 <= row < self.info.height):
            return None
        preview_row = int(row * self.shape[0] / self.info.height)
        preview_col = int(col * self.shape[1] / self.info.width)
        if not self.valid[preview_row, preview_col]:
            return None
        return tuple(float(value) for value in self.data[:, preview_row, preview_col])

    def band_array(self, band: int) -> np.ndarray:
        """The preview pixels of one 1-based band of the raster.

        Raises:
            BandMismatchError: the band was not read into this preview.
        """
        if band not in self.bands:
            read = ", ".join(map(str, self.bands))
            raise BandMismatchError(
                f"{self.info.path}: band {band} is not in this preview (bands {read} were read). "
                "Read the preview again with that band."
            )
        return self.data[self.bands.index(band)]


def preview_shape(width: int, height: int, max_side: int = PREVIEW_MAX_SIDE) -> tuple[int, int]:
    """Rows and columns of a preview that keeps the aspect ratio and fits ``max_side``."""
    factor = max(width, height) / max_side
    if factor <= 1:
        return (height, width)
    return (max(1, round(height / factor)), max(1, round(width / factor)))


def read_preview(
    info: RasterInfo,
    bands: Sequence[int] | None = None,
    max_side: int = PREVIEW_MAX_SIDE,
    resampling: str = "average",
) -> Preview:
    """Reads a decimated preview of the given 1-based bands (every data band when None).

    Average resampling ignores nodata pixels, so a nodata collar does not darken the edge of the
    data; validity follows the rule of `engine.rasters.read.read_block`.

    Raises:
        RasterError: the raster cannot be opened or its pixels cannot be read.
        BandMismatchError: a band does not exist.
    """
    if resampling not in RESAMPLING:
        raise ValueError(f"Unknown resampling {resampling!r}; choose one of {', '.join(RESAMPLING)}.")
    chosen = check_bands(info, bands)
    rows, cols = preview_shape(info.width, info.height, max_side)
    with open_raster(info.path) as dataset:
        try:
            data = dataset.read(
                chosen,
                out_shape=(len(chosen), rows, cols),
                resampling=RESAMPLING[resampling],
                out_dtype="float32",
            )
            valid = pixel_validity(dataset, data, info, chosen, out_shape=(rows, cols))
        except RasterioError as exc:
            raise RasterError(
                f"{info.path}: the preview cannot be read ({first_line(exc)}). "
                "The file is probably corrupt: copy or export it again."
            ) from exc
    data[:, ~valid] = 0.0
    transform = Affine(*info.transform) * Affine.scale(info.width / cols, info.height / rows)
    return Preview(info=info, bands=tuple(chosen), data=data, valid=valid, transform=transform)


def read_window(
    info: RasterInfo, bands: Sequence[int], window: Window, out_shape: tuple[int, int]
) -> Preview:
    """Reads one window of the raster at ``out_shape`` pixels: full resolution when zoomed in, the
    overviews when zoomed out (GDAL picks them for a decimated read), for a view that stays sharp.

    Raises:
        RasterError: the pixels cannot be read.
        BandMismatchError: a band does not exist.
    """
    chosen = check_bands(info, bands)
    with open_raster(info.path) as dataset:
        try:
            data = dataset.read(
                chosen,
                window=window,
                out_shape=(len(chosen), *out_shape),
                resampling=Resampling.average,
                out_dtype="float32",
            )
            valid = pixel_validity(dataset, data, info, chosen, window=window, out_shape=out_shape)
        except RasterioError as exc:
            raise RasterError(
                f"{info.path}: a window of the raster cannot be read ({first_line(exc)}). "
                "The file is probably corrupt: copy or export it again."
            ) from exc
    data[:, ~valid] = 0.0
    transform = Affine(*info.transform) * Affine.translation(window.col_off, window.row_off)
    transform *= Affine.scale(window.width / out_shape[1], window.height / out_shape[0])
    return Preview(info=info, bands=tuple(chosen), data=data, valid=valid, transform=transform)


def percentile_limits(
    values: np.ndarray, valid: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> tuple[float, float] | None:
    """Low and high stretch limits of one band's valid pixels; None when no pixel is valid.

    At most ``STRETCH_SAMPLE`` evenly spaced valid pixels are used, which moves the limits by far
    less than one display level and keeps a slider responsive.
    """
    samples = values[valid]
    if samples.size == 0:
        return None
    step = max(1, math.ceil(samples.size / STRETCH_SAMPLE))
    low, high = np.percentile(samples[::step], percentiles)
    return (float(low), float(high))


def stretch(values: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Maps values linearly from ``limits`` to 0–255 (uint8); a constant band becomes mid-grey."""
    low, high = limits
    if not high > low:
        return np.full(values.shape, 128, dtype=np.uint8)
    scaled = (values - low) * (255.0 / (high - low))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def render_rgba(
    preview: Preview,
    bands: Sequence[int],
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
    lut: np.ndarray | None = None,
    limits: Sequence[tuple[float, float] | None] | None = None,
) -> np.ndarray:
    """RGBA uint8 (rows, cols, 4) of a 3-band composite or a single band, nodata transparent.

    Args:
        preview: the pixels to show.
        bands: three 1-based bands for red, green and blue, or one band.
        percentiles: the stretch of each band, computed on its own valid pixels.
        lut: for a single band, a (256, 3|4) uint8 colour map; grey when None.
        limits: the stretch of each band given instead (those of the whole raster's preview, so a
            full-resolution window drawn over it has the same colours).

    Raises:
        BandMismatchError: a band is not in the preview.
        ValueError: not one or three bands.
    """
    if len(bands) not in (1, 3):
        raise ValueError(f"A preview shows one band or three (red, green, blue), not {len(bands)}.")
    rows, cols = preview.shape
    rgba = np.zeros((rows, cols, 4), dtype=np.uint8)
    channels = []
    for index, band in enumerate(bands):
        values = preview.band_array(band)
        band_limits = limits[index] if limits else percentile_limits(values, preview.valid, percentiles)
        channels.append(stretch(values, band_limits) if band_limits else np.zeros((rows, cols), np.uint8))
    if len(channels) == 3:
        rgba[..., :3] = np.stack(channels, axis=-1)
    elif lut is not None:
        rgba[..., :3] = lut[channels[0], :3]
    else:
        rgba[..., :3] = channels[0][..., None]
    rgba[..., 3] = np.where(preview.valid, 255, 0)
    return rgba
