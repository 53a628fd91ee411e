"""Label polygons burnt into a class mask on one image's own grid.

The polygons are first reprojected from the label file's CRS to the image's (through PROJ, vertex
by vertex), so a GeoPackage in EPSG:4326 labels a UTM image. The pixel rule is GDAL's: a pixel
belongs to a polygon when its centre lies inside (holes excluded); ``all_touched`` takes every
pixel the outline touches instead. Where polygons overlap, the smaller one wins (a building inside
a parcel keeps its class), and among equal areas the later feature in the file. The mask is
written strip by strip with only the polygons that reach each strip, so a 20000² image needs a
strip of memory, not the whole mask.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform as transform_coordinates
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from engine.datasets import IGNORE_INDEX
from engine.errors import DatasetError
from engine.labels.vector_file import LabelFeatures
from engine.rasters.read import RasterInfo

STRIP_ROWS = 1024
MASK_BLOCK = 256


@dataclass(frozen=True)
class GridPolygons:
    """Label polygons in one image's CRS, in burning order (largest first), with their class ids."""

    geometries: np.ndarray
    ids: np.ndarray
    tree: shapely.STRtree


def polygons_on_grid(
    features: LabelFeatures, feature_ids: np.ndarray, image: RasterInfo
) -> GridPolygons | None:
    """The polygons that reach ``image``, reprojected to its CRS; None when none does.

    Raises:
        DatasetError: the image has no CRS, so polygons with one cannot be placed on it.
    """
    if image.crs_wkt is None:
        raise DatasetError(
            f"{image.path} has no CRS, so the polygons of {features.path} cannot be placed on it. "
            "Give the image its CRS (gdal_edit.py -a_srs) or train from a mask instead."
        )
    geometries = reproject(features.geometries, features.crs_wkt, image.crs_wkt)
    hits = shapely.STRtree(geometries).query(
        footprint(image, Window(0, 0, image.width, image.height)), predicate="intersects"
    )
    if hits.size == 0:
        return None
    hits.sort()
    chosen, ids = geometries[hits], feature_ids[hits]
    order = np.argsort(-shapely.area(chosen), kind="stable")
    chosen, ids = chosen[order], ids[order]
    return GridPolygons(chosen, ids, shapely.STRtree(chosen))


def reproject(geometries: np.ndarray, source_wkt: str, target_wkt: str) -> np.ndarray:
    """Geometries moved from one CRS to another, every vertex through PROJ (GDAL's own)."""
    source, target = CRS.from_wkt(source_wkt), CRS.from_wkt(target_wkt)
    if source == target:
        return geometries

    def move(xy: np.ndarray) -> np.ndarray:
        xs, ys = transform_coordinates(source, target, xy[:, 0], xy[:, 1])
        return np.column_stack([xs, ys])

    return shapely.transform(geometries, move)


def footprint(image: RasterInfo, window: Window) -> shapely.Polygon:
    """The ground outline of a window of the image (exact for rotated grids too)."""
    affine = rasterio.Affine(*image.transform)
    col, row, width, height = window.col_off, window.row_off, window.width, window.height
    corners = [(col, row), (col + width, row), (col + width, row + height), (col, row + height)]
    return shapely.Polygon([affine * corner for corner in corners])


def rasterize_mask(
    polygons: GridPolygons, image: RasterInfo, target: Path, fill: int, all_touched: bool
) -> dict[int, int]:
    """Writes the class mask of ``image`` to ``target`` (a tiled GeoTIFF, written under a temporary
    name and renamed when complete); returns the pixel count of each value written."""
    affine = rasterio.Affine(*image.transform)
    profile = {
        "driver": "GTiff",
        "width": image.width,
        "height": image.height,
        "count": 1,
        "dtype": "uint8",
        "nodata": IGNORE_INDEX,  # so a mask of class 0 and unlabelled pixels is never read as binary 0/1
        "crs": CRS.from_wkt(str(image.crs_wkt)),
        "transform": affine,
        "compress": "deflate",
        "tiled": True,
        "blockxsize": MASK_BLOCK,
        "blockysize": MASK_BLOCK,
    }
    counts = np.zeros(256, dtype=np.int64)
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with rasterio.open(staging, "w", **profile) as dataset:
            for row in range(0, image.height, STRIP_ROWS):
                window = Window(0, row, image.width, min(STRIP_ROWS, image.height - row))
                block = burn_window(polygons, image, window, affine, fill, all_touched)
                counts += np.bincount(block.ravel(), minlength=256)
                dataset.write(block, 1, window=window)
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    return {value: int(count) for value, count in enumerate(counts.tolist()) if count}


def burn_window(
    polygons: GridPolygons,
    image: RasterInfo,
    window: Window,
    affine: rasterio.Affine,
    fill: int,
    all_touched: bool,
) -> np.ndarray:
    """The class ids of one window of the image: ``fill`` where no polygon lies."""
    shape = (int(window.height), int(window.width))
    hits = polygons.tree.query(footprint(image, window), predicate="intersects")
    if hits.size == 0:
        return np.full(shape, fill, dtype=np.uint8)
    hits.sort()
    return rasterize(
        zip(polygons.geometries[hits], polygons.ids[hits].tolist(), strict=True),
        out_shape=shape,
        transform=window_transform(window, affine),
        fill=fill,
        all_touched=all_touched,
        dtype="uint8",
    )
