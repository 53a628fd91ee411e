"""Exact band statistics gathered while rows are written, stored as GDAL's STATISTICS_* tags.

QGIS stretches a band by its statistics and `gdalinfo` prints them; without them QGIS would scan
the raster on first display. Gathering them as the rows go by costs no second pass over the file.
"""

from __future__ import annotations

import math

import numpy as np


class RunningBandStatistics:
    """Minimum, maximum, mean and standard deviation of each band's valid values so far.

    Valid means not ``nodata`` (and, for a NaN nodata, not NaN).
    """

    def __init__(self, count: int, nodata: float) -> None:
        self.nodata = nodata
        self._pixels = 0
        self._valid = np.zeros(count, dtype=np.int64)
        self._mean = np.zeros(count, dtype=np.float64)
        self._squared_deviations = np.zeros(count, dtype=np.float64)
        self._min = np.full(count, np.inf)
        self._max = np.full(count, -np.inf)

    def add(self, data: np.ndarray) -> None:
        """Counts ``(count, rows, width)`` values."""
        self._pixels += data.shape[1] * data.shape[2]
        for band, values in enumerate(data):
            flat = values.ravel()
            keep = ~np.isnan(flat) if math.isnan(self.nodata) else flat != self.nodata
            if flat.dtype.kind == "f":
                keep &= np.isfinite(flat)
            valid = flat[keep].astype(np.float64)
            if not valid.size:
                continue
            # Chan's pairwise update: stable where a running sum of squares would cancel out.
            block_mean = valid.mean()
            total = self._valid[band] + valid.size
            delta = block_mean - self._mean[band]
            self._squared_deviations[band] += (
                np.square(valid - block_mean).sum() + delta * delta * self._valid[band] * valid.size / total
            )
            self._mean[band] += delta * valid.size / total
            self._valid[band] = total
            self._min[band] = min(self._min[band], valid.min())
            self._max[band] = max(self._max[band], valid.max())

    def tags(self, band: int) -> dict[str, str]:
        """GDAL's statistics tags for band ``band`` (0-based); empty when it holds no valid value."""
        count = int(self._valid[band])
        if count == 0:
            return {}
        return {
            "STATISTICS_MINIMUM": repr(float(self._min[band])),
            "STATISTICS_MAXIMUM": repr(float(self._max[band])),
            "STATISTICS_MEAN": repr(float(self._mean[band])),
            "STATISTICS_STDDEV": repr(math.sqrt(self._squared_deviations[band] / count)),
            "STATISTICS_VALID_PERCENT": f"{100.0 * count / max(self._pixels, 1):.4g}",
        }
