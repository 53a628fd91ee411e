"""True ground areas of pixels, from their corners on the WGS 84 ellipsoid.

A pixel's area in map units is only a ground area in an equal-area CRS: in Web Mercator
(EPSG:3857) it is inflated by 1/cos²(latitude), twice the truth at 45°, and in a geographic CRS it
is in square degrees. So each pixel's four corners go to longitude and latitude (PROJ, through
rasterio), then to Lambert's cylindrical equal-area projection of the ellipsoid, where the planar
area of the quadrilateral is its area on the ground (pixels are far too small for their edges'
curvature to matter). Areas are computed for every row and a few blocks of columns: exact for
north-up rasters in cylindrical CRSs (area depends on the row alone) and within a few parts per
million elsewhere. A raster without a CRS, or whose CRS cannot be located on
the Earth, keeps planar areas in its map units, and says so.
"""

from __future__ import annotations

import math

import numpy as np
from rasterio._err import CPLE_BaseError  # GDAL's errors (e.g. no operation from a local CRS to WGS 84)
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.warp import transform as warp_transform

from engine.rasters.read import RasterInfo

WGS84_A = 6378137.0
WGS84_F = 1 / 298.257223563
WGS84_E2 = WGS84_F * (2 - WGS84_F)
# Columns are cut into this many blocks, each taken at its centre pixel's area: areas vary slowly
# and smoothly across a row (not at all in a north-up cylindrical CRS), so the error stays in ppm.
COLUMN_BLOCKS = 16
ROW_STEP = 16
SQUARE_METRES = "square metres"
SQUARE_METRES_PER_HECTARE = 10_000.0
GROUND_METHOD = "ground area on the WGS 84 ellipsoid, from each pixel's corners"


class PixelAreas:
    """The ground area of each pixel of a raster, summed per label strip by strip.

    ``unit`` is "square metres" whenever the CRS locates the raster on the Earth; otherwise areas
    are planar, in the CRS's (or the transform's) map units, and ``method`` says why.
    """

    def __init__(self, info: RasterInfo) -> None:
        self.width = info.width
        self.height = info.height
        self._transform = info.transform
        self._crs = _earth_crs(info)
        if self._crs is None:
            self.unit = _map_unit(info)
            self.method = "planar, in map units: " + (
                "the raster has no CRS" if info.crs_wkt is None else "its CRS is not located on the Earth"
            )
        else:
            self.unit = SQUARE_METRES
            self.method = GROUND_METHOD
        edges = np.unique(
            np.linspace(0, info.width, min(COLUMN_BLOCKS, info.width) + 1).round().astype(np.intp)
        )
        self._starts = edges[:-1]
        self._blocks = self._starts.size
        self._block_of_column = np.repeat(np.arange(self._blocks), np.diff(edges))
        self._centres = (edges[:-1] + edges[1:] - 1) / 2  # a block's area is its centre pixel's

    @property
    def in_metres(self) -> bool:
        return self.unit == SQUARE_METRES

    def centre_pixel_area(self) -> float:
        """The area of the pixel at the raster's centre (in ``unit``)."""
        return float(self._sample(self.height // 2, 1)[0, self._block_of_column[self.width // 2]])

    def sum_by_label(self, labels: np.ndarray, valid: np.ndarray, row_off: int, count: int) -> np.ndarray:
        """Total area of the valid pixels of each label 0..count-1 in rows starting at ``row_off``.

        ``labels`` and ``valid`` are (rows, width) arrays of a strip of the raster. Each label's
        pixels are counted per row and column block, and the counts weighed by the cells' areas.
        """
        areas = self._sample(row_off, labels.shape[0])
        totals = np.zeros(count, dtype=np.float64)
        for label in range(count):
            pixels = ((labels == label) & valid).view(np.uint8)
            cells = np.add.reduceat(pixels, self._starts, axis=1, dtype=np.int64)
            totals[label] = float(np.sum(cells * areas))
        return totals

    def _sample(self, row_off: int, rows: int) -> np.ndarray:
        """Areas (rows, column blocks) of the pixels of ``rows`` rows at the blocks' centres.

        Computed every ROW_STEP rows and interpolated between: over a few rows an area changes
        almost linearly, so the error is far below a part per million.
        """
        a, b, c, d, e, f = self._transform
        if self._crs is None:
            return np.full((rows, self._blocks), abs(a * e - b * d))
        sampled = np.unique(np.r_[np.arange(row_off, row_off + rows, ROW_STEP), row_off + rows - 1])
        corner_rows = np.stack([sampled, sampled + 1], axis=1).ravel().astype(np.float64)
        corner_cols = np.stack([self._centres, self._centres + 1], axis=1).ravel()
        grid_cols, grid_rows = np.meshgrid(corner_cols, corner_rows)
        xs = (a * grid_cols + b * grid_rows + c).ravel()
        ys = (d * grid_cols + e * grid_rows + f).ravel()
        lon, lat = warp_transform(self._crs, "EPSG:4326", xs.tolist(), ys.tolist())
        lon = np.radians(np.array(lon)).reshape(sampled.size, 2, -1, 2)
        lat = np.radians(np.array(lat)).reshape(sampled.size, 2, -1, 2)
        # Corners in order: top-left, top-right, bottom-right, bottom-left of each sampled pixel.
        corners_lon = np.stack([lon[:, 0, :, 0], lon[:, 0, :, 1], lon[:, 1, :, 1], lon[:, 1, :, 0]])
        corners_lat = np.stack([lat[:, 0, :, 0], lat[:, 0, :, 1], lat[:, 1, :, 1], lat[:, 1, :, 0]])
        # Longitudes relative to the first corner, so a pixel across the antimeridian stays whole.
        relative = np.angle(np.exp(1j * (corners_lon - corners_lon[0])))
        x = WGS84_A * relative
        y = WGS84_A * _authalic_q(corners_lat) / 2
        shoelace = sum(x[i] * y[(i + 1) % 4] - x[(i + 1) % 4] * y[i] for i in range(4))
        areas = np.abs(shoelace) / 2
        wanted = np.arange(row_off, row_off + rows)
        return np.stack(
            [np.interp(wanted, sampled, areas[:, block]) for block in range(self._blocks)], axis=1
        )


def _authalic_q(lat: np.ndarray) -> np.ndarray:
    """Snyder's q(φ) for the WGS 84 ellipsoid: y = a·q/2 is the cylindrical equal-area ordinate."""
    e = math.sqrt(WGS84_E2)
    s = np.sin(lat)
    return (1 - WGS84_E2) * (s / (1 - WGS84_E2 * s * s) - np.log((1 - e * s) / (1 + e * s)) / (2 * e))


def _earth_crs(info: RasterInfo) -> CRS | None:
    """The raster's CRS when PROJ can take its points to longitude and latitude, else None."""
    if info.crs_wkt is None:
        return None
    try:
        crs = CRS.from_wkt(info.crs_wkt)
        lon, lat = warp_transform(crs, "EPSG:4326", [info.transform[2]], [info.transform[5]])
    except (CRSError, CPLE_BaseError, ValueError):
        return None
    return crs if all(math.isfinite(v) for v in (*lon, *lat)) else None


def _map_unit(info: RasterInfo) -> str:
    if info.crs_wkt is None:
        return "square map units (no CRS)"
    unit = CRS.from_wkt(info.crs_wkt).units_factor[0]
    return f"square {unit}s" if unit in ("metre", "degree", "foot") else f"square {unit}"


def hectares(square_metres: float) -> float:
    return square_metres / SQUARE_METRES_PER_HECTARE
