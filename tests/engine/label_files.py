"""Label files for tests: polygons written as GeoPackage, GeoJSON, FlatGeobuf or a zipped Shapefile."""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from rasterio.crs import CRS

from engine.labels.rasterize import reproject
from engine.labels.vector_file import gdal_path

DRIVERS = {".gpkg": "GPKG", ".geojson": "GeoJSON", ".fgb": "FlatGeobuf", ".shp": "ESRI Shapefile"}


def write_labels(
    path: Path,
    geometries: list[shapely.Geometry],
    crs: str | None,
    fields: dict[str, list[object]] | None = None,
    layer: str | None = None,
    append: bool = False,
) -> Path:
    """Writes polygons (with attribute columns) in the format the suffix names; ``.zip`` holds a
    Shapefile of the same stem."""
    if path.suffix == ".zip":
        folder = path.with_suffix("")
        folder.mkdir(parents=True, exist_ok=True)
        shp = write_labels(folder / f"{path.stem}.shp", geometries, crs, fields)
        with zipfile.ZipFile(path, "w") as archive:
            for part in sorted(folder.glob(f"{shp.stem}.*")):
                archive.write(part, part.name)
        return path
    fields = fields or {}
    path.parent.mkdir(parents=True, exist_ok=True)
    kinds = {geometry.geom_type for geometry in geometries}
    kind = kinds.pop() if len(kinds) == 1 else "Unknown"
    if path.suffix == ".shp" and kind == "MultiPolygon":
        kind = "Polygon"  # a Shapefile polygon may have several parts
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(np.array(geometries, dtype=object)),
        [np.array(values) for values in fields.values()],
        list(fields),
        layer=layer,
        driver=DRIVERS[path.suffix],
        geometry_type=kind,
        crs=crs,
        append=append,
    )
    return path


def read_polygons(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """The geometries, attribute columns and CRS (WKT) of a one-layer file."""
    layers = [name for name, kind in pyogrio.list_layers(gdal_path(path)) if kind is not None]
    meta, _, wkb, data = pyogrio.raw.read(gdal_path(path), layer=layers[0])
    return shapely.from_wkb(wkb), dict(zip(meta["fields"], data, strict=True)), meta["crs"]


def reprojected_copy(source: Path, target: Path, crs: str, keep: tuple[str, ...] = ("building",)) -> Path:
    """``source``'s polygons moved to ``crs`` and saved in ``target``'s format with the fields ``keep``."""
    geometries, fields, source_crs = read_polygons(source)
    moved = reproject(geometries, CRS.from_user_input(source_crs).to_wkt(), CRS.from_user_input(crs).to_wkt())
    kept = {name: list(values) for name, values in fields.items() if name in keep}
    return write_labels(target, list(moved), crs, kept)


def deepforest_boxes(csv_path: Path, image: Path, target: Path) -> Path:
    """DeepForest's tree boxes (pixel xmin,ymin,xmax,ymax) as map polygons with a ``label`` field."""
    with rasterio.open(image) as dataset:
        transform, crs = dataset.transform, dataset.crs.to_string()
    boxes, labels = [], []
    with csv_path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            left, top = transform * (float(row["xmin"]), float(row["ymin"]))
            right, bottom = transform * (float(row["xmax"]), float(row["ymax"]))
            boxes.append(shapely.box(left, bottom, right, top))
            labels.append(row["label"])
    return write_labels(target, boxes, crs, {"label": labels})
