"""Small raster writers for tests that need a specific dtype, nodata or CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def write_raster(
    path: Path,
    data: np.ndarray,
    nodata: float | None = None,
    crs: str | None = "EPSG:32618",
    pixel: float = 1.0,
    **overrides: object,
) -> Path:
    """Writes a (bands, rows, cols) array as a GeoTIFF with a north-up transform.

    ``overrides`` replace or add creation options (``transform``, ``tiled``, ``compress``...).
    """
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": from_origin(0, 100, pixel, pixel),
        "nodata": nodata,
        **overrides,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data)
    return path
