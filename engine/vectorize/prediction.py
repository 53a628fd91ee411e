"""``--polygons``: a prediction's class map (or anomaly mask) as one styled GeoPackage per raster.

Polygonised from the finished, seamless output raster (see `engine.vectorize.regions`), so a
region cut by tile or strip boundaries during prediction is one feature. A class map gives one
feature per connected region with its class id, class name and area; an anomaly map gives its
anomalous regions with their area and mean reconstruction error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from rasterio import Affine
from rasterio.features import rasterize

from engine.errors import EngineError, OutputError
from engine.inference.outputs import CLASS_NODATA
from engine.models.metadata import ModelMetadata
from engine.rasters.read import RasterInfo
from engine.vectorize.geopackage import categorized_style, single_style, write_styled_geopackage
from engine.vectorize.regions import Regions, mean_scores, raster_regions, simplify_regions

ANOMALY_COLOR = "#ff0000"


def polygon_file_name(metadata: ModelMetadata, stem: str) -> str:
    """``<stem>_classes.gpkg`` for class maps, ``<stem>_anomaly.gpkg`` for anomaly maps."""
    return f"{stem}_classes.gpkg" if metadata.task == "segmentation" else f"{stem}_anomaly.gpkg"


def check_polygon_outputs(
    metadata: ModelMetadata, raster_paths: list[Path], output_dir: Path, overwrite: bool
) -> dict[Path, str]:
    """Each raster's GeoPackage name; refuses to replace existing ones unless ``overwrite``.

    Raises:
        OutputError: a GeoPackage exists and ``overwrite`` is not set.
    """
    names = {path: polygon_file_name(metadata, path.stem) for path in raster_paths}
    existing = [output_dir / name for name in names.values() if (output_dir / name).exists()]
    if existing and not overwrite:
        raise OutputError(
            f"Output(s) already exist: {', '.join(map(str, existing))}. "
            "Use --overwrite to replace them, or choose another folder."
        )
    return names


def check_polygon_options(polygons: bool, min_area: float, simplify: float) -> None:
    """Raises EngineError for a negative or non-finite setting, or one given without ``--polygons``."""
    for name, value in (("--min-area", min_area), ("--simplify", simplify)):
        if not np.isfinite(value) or value < 0:
            raise EngineError(f"{name} {value} must be zero or a positive number.")
    if not polygons and (min_area or simplify):
        raise EngineError("--min-area and --simplify shape the polygons: add --polygons to write them.")


def write_prediction_polygons(
    metadata: ModelMetadata,
    outputs: dict[str, Path],
    info: RasterInfo,
    target: Path,
    min_area: float,
    simplify: float,
) -> int:
    """Writes the regions of a finished prediction to ``target``; returns how many were written.

    ``min_area`` is in square metres (true areas, also for geographic CRSs); ``simplify`` in pixels.
    """
    tolerance = simplify * min(info.pixel_size)
    if metadata.task == "segmentation":
        classes = [(item.id, item.name, item.color) for item in metadata.classes]
        return write_class_polygons(outputs["classes"], classes, target, min_area, tolerance)
    regions = _large_enough(raster_regions(outputs["anomaly_mask"], {0, CLASS_NODATA}), min_area)
    scores = mean_scores(outputs["anomaly"], regions)
    regions = simplify_regions(regions, tolerance)
    fields = {"area_m2": regions.areas, "mean_score": scores}
    write_styled_geopackage(
        target, target.stem, regions.geometries, fields, regions.crs_wkt, single_style(ANOMALY_COLOR)
    )
    return len(regions)


def write_class_polygons(
    class_raster: Path,
    classes: Sequence[tuple[int, str, str]],
    target: Path,
    min_area: float = 0.0,
    tolerance: float = 0.0,
) -> int:
    """Writes the regions of a class raster (a class map, or painted labels with 255 unlabelled) to a
    GeoPackage styled with the classes' ``(id, name, colour)``; returns how many were written.

    ``min_area`` is in square metres, ``tolerance`` (simplification) in map units.
    """
    regions = _large_enough(raster_regions(class_raster, {CLASS_NODATA}), min_area)
    regions = simplify_regions(regions, tolerance)
    names = {class_id: name for class_id, name, _color in classes}
    fields = {
        "class_id": regions.values.astype(np.int32),
        "class_name": np.array([names.get(int(v), f"class {v}") for v in regions.values], dtype=object),
        "area_m2": regions.areas,
    }
    style = categorized_style("class_id", list(classes))
    write_styled_geopackage(target, target.stem, regions.geometries, fields, regions.crs_wkt, style)
    return len(regions)


def polygon_outlines(path: Path, shape: tuple[int, int], transform: Affine) -> np.ndarray:
    """Where the outlines of a written GeoPackage's polygons fall on a grid (e.g. a preview's): a
    (rows, cols) bool array, every pixel an edge touches."""
    layers = [name for name, kind in pyogrio.list_layers(str(path)) if kind is not None]
    _, _, wkb, _ = pyogrio.raw.read(str(path), layer=layers[0], columns=[])
    if wkb is None or len(wkb) == 0:
        return np.zeros(shape, dtype=bool)
    edges = shapely.boundary(shapely.from_wkb(wkb))
    burnt = rasterize(((edge, 1) for edge in edges), out_shape=shape, transform=transform, all_touched=True)
    return burnt.astype(bool)


def _large_enough(regions: Regions, min_area: float) -> Regions:
    return regions.subset(regions.areas >= min_area) if min_area > 0 else regions
