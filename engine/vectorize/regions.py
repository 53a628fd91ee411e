"""Connected regions of a written class raster as polygons, with their areas in square metres.

GDAL's polygoniser reads the raster band itself, a few lines at a time, so a 20000² class map
never sits in memory, and a region that spans tile or strip boundaries of the prediction is one
polygon (the raster is already seamless). Regions are 4-connected: pixels touching only at a
corner are separate regions. Edges follow pixel edges, so rasterising a region again (pixel
centre rule) gives back exactly its pixels. ``simplify`` then smooths the edges of all regions
together (GEOS coverage simplification), so neighbouring regions still share their edges.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import geometry_mask, shapes
from rasterio.windows import Window, from_bounds

from engine.labels.rasterize import reproject

# World Cylindrical Equal Area (WGS 84): planar areas there are true areas on the ellipsoid.
EQUAL_AREA_CRS = "EPSG:6933"


@dataclass(frozen=True)
class Regions:
    """Polygons of connected regions with their raster value and area (m², or map units² without CRS)."""

    geometries: np.ndarray
    values: np.ndarray
    areas: np.ndarray
    crs_wkt: str | None

    def __len__(self) -> int:
        return len(self.geometries)

    def subset(self, keep: np.ndarray) -> Regions:
        return Regions(self.geometries[keep], self.values[keep], self.areas[keep], self.crs_wkt)


def raster_regions(path: Path, skip_values: set[int]) -> Regions:
    """Every connected region of band 1 of ``path``, except those whose value is in ``skip_values``."""
    with rasterio.open(path) as dataset:
        transform, crs = dataset.transform, dataset.crs
        found = [
            (shapely.geometry.shape(geometry), int(value))
            for geometry, value in shapes(rasterio.band(dataset, 1), transform=transform, connectivity=4)
            if int(value) not in skip_values
        ]
    crs_wkt = crs.to_wkt() if crs else None
    geometries = np.array([geometry for geometry, _ in found], dtype=object)
    values = np.array([value for _, value in found], dtype=np.int64)
    return Regions(geometries, values, square_metres(geometries, crs_wkt), crs_wkt)


def square_metres(geometries: np.ndarray, crs_wkt: str | None) -> np.ndarray:
    """True ground areas, measured in an equal-area projection whatever the CRS.

    A planar area in the raster's own CRS is only true in an equal-area one: Web Mercator inflates
    it by 1/cos²(latitude) (x2 at 45 degrees), degrees are no area at all, and even UTM is off by its
    scale factor. So the polygons are densified and reprojected, as the summaries' pixel areas are
    computed on the ellipsoid (`engine.geodesy`). Without a CRS, map units² are all there is.
    """
    if len(geometries) == 0:
        return np.zeros(0)
    if crs_wkt is None:
        return shapely.area(geometries)
    densified = shapely.segmentize(geometries, max_segment_length=_densify_step(geometries))
    return shapely.area(reproject(densified, crs_wkt, CRS.from_string(EQUAL_AREA_CRS).to_wkt()))


def _densify_step(geometries: np.ndarray) -> float:
    """Vertices every few pixels along long straight edges, so the projection bends them truly."""
    left, bottom, right, top = shapely.total_bounds(geometries)
    return max(right - left, top - bottom, 1e-9) / 256


def simplify_regions(regions: Regions, tolerance: float) -> Regions:
    """Edges simplified together (shared edges stay shared); ``tolerance`` in map units."""
    if tolerance <= 0 or len(regions) == 0:
        return regions
    simplified = shapely.coverage_simplify(regions.geometries, tolerance)
    return Regions(simplified, regions.values, regions.areas, regions.crs_wkt)


def mean_scores(path: Path, regions: Regions) -> np.ndarray:
    """The mean of band 1 of ``path`` under each region, read window by window (bounded memory)."""
    means = np.zeros(len(regions))
    with rasterio.open(path) as dataset:
        for index, geometry in enumerate(regions.geometries):
            window = (
                from_bounds(*geometry.bounds, transform=dataset.transform).round_offsets().round_lengths()
            )
            window = window.intersection(Window(0, 0, dataset.width, dataset.height))
            values = dataset.read(1, window=window, masked=True)
            inside = geometry_mask(
                [geometry], values.shape, dataset.window_transform(window), invert=True
            ) & ~np.ma.getmaskarray(values)
            means[index] = float(values.data[inside].mean()) if inside.any() else float("nan")
    return means
