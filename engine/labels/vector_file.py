"""Reading label polygons from the files people digitise them in: GeoPackage, Shapefile, GeoJSON, FlatGeobuf.

GDAL's vector side (through pyogrio) reads every format, and a zipped Shapefile through its
``/vsizip/`` path, so nothing is unpacked. Everything a training run cannot use is refused here with
the file and the fix in the message: no CRS (the polygons could not be placed on an image), points
or lines (no area to label), an unknown layer or field. Invalid polygons (self-intersections, bow
ties, as QGIS digitising leaves them) are repaired with GEOS's ``make_valid`` and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError, FieldError
from rasterio.crs import CRS

from engine.errors import DatasetError

LABEL_SUFFIXES = (".gpkg", ".shp", ".zip", ".geojson", ".json", ".fgb")
FORMATS_TEXT = "a GeoPackage (.gpkg), Shapefile (.shp or a .zip of one), GeoJSON or FlatGeobuf (.fgb)"
POLYGONAL = ("Polygon", "MultiPolygon")


class LabelFileError(DatasetError):
    """A label file cannot be read, or its polygons cannot label images."""


@dataclass(frozen=True)
class LabelLayerInfo:
    """A label layer before its features are read: what a field picker and a check need.

    ``fields`` maps each attribute to its kind (see `_field_kind`).
    """

    path: Path
    layer: str
    layers: tuple[str, ...]
    fields: dict[str, str]
    feature_count: int
    crs_wkt: str | None


@dataclass(frozen=True)
class LabelFeatures:
    """The usable polygons of a layer, with the class field's value of each (None without a field).

    ``repaired`` counts invalid polygons made valid; ``dropped`` counts features left out because
    their geometry or class value is missing (or nothing polygonal was left after repair).
    """

    path: Path
    layer: str
    crs_wkt: str
    geometries: np.ndarray
    values: np.ndarray | None
    repaired: int
    dropped: int


def gdal_path(path: Path) -> str:
    """The name GDAL opens: a zipped Shapefile is read in place through ``/vsizip/``."""
    return f"/vsizip/{path}" if path.suffix.lower() == ".zip" else str(path)


def describe_label_file(path: Path, layer: str | None = None) -> LabelLayerInfo:
    """Opens a label file and one of its layers (the only one, or ``layer``) without reading features.

    Raises:
        LabelFileError: missing file, not a vector format, unknown or ambiguous layer.
    """
    path = Path(path)
    layers = label_layers(path)
    chosen = _choose_layer(path, layers, layer)
    info = pyogrio.read_info(gdal_path(path), layer=chosen)
    fields = {
        str(name): _field_kind(str(dtype)) for name, dtype in zip(info["fields"], info["dtypes"], strict=True)
    }
    crs = info.get("crs")
    return LabelLayerInfo(path, chosen, layers, fields, int(info["features"]), _crs_wkt(crs))


def label_layers(path: Path) -> tuple[str, ...]:
    """The names of a label file's layers that hold geometries.

    Raises:
        LabelFileError: missing file, not a vector format, or no layer with geometries.
    """
    if not path.exists():
        raise LabelFileError(f"The label file {path} does not exist. Check the path.")
    if path.suffix.lower() not in LABEL_SUFFIXES:
        raise LabelFileError(f"{path} is not a label file: give {FORMATS_TEXT}.")
    try:
        # tables without geometry (QGIS's layer_styles, metadata) are no label layers
        layers = tuple(str(name) for name, kind in pyogrio.list_layers(gdal_path(path)) if kind is not None)
    except (DataSourceError, DataLayerError) as exc:
        raise LabelFileError(
            f"{path} cannot be read as {FORMATS_TEXT} ({_first_line(exc)}). "
            "Open it in QGIS and save it again."
        ) from exc
    if not layers:
        raise LabelFileError(f"{path} holds no layer of polygons. Save the polygons into it from QGIS.")
    return layers


def read_label_features(path: Path, layer: str | None = None, field: str | None = None) -> LabelFeatures:
    """Reads, checks and repairs a layer's polygons and the class field's values.

    Raises:
        LabelFileError: no CRS, no features, unknown field or one that holds neither text nor whole
            numbers, geometries that are not polygons, or no usable polygon at all.
    """
    info = describe_label_file(path, layer)
    where = f"{info.path}" + (f" (layer {info.layer!r})" if len(info.layers) > 1 else "")
    if field is not None and field not in info.fields:
        known = ", ".join(info.fields) or "none"
        raise LabelFileError(f"{where} has no field {field!r}; its fields are: {known}. Choose one of them.")
    if field is not None and info.fields[field] == "other":
        raise LabelFileError(
            f"The field {field!r} of {where} holds neither text nor whole numbers; choose a field with class "
            "names or class ids."
        )
    if info.crs_wkt is None:
        raise LabelFileError(
            f"{where} has no CRS, so its polygons cannot be placed on the images. Set its CRS in QGIS "
            "(Layer Properties > Source) or with ogr2ogr -a_srs, then try again."
        )
    try:
        _, _, wkb, field_data = pyogrio.raw.read(
            gdal_path(info.path), layer=info.layer, columns=[field] if field else []
        )
    except (DataSourceError, DataLayerError, FieldError) as exc:
        raise LabelFileError(f"{where} cannot be read ({_first_line(exc)}).") from exc
    if wkb is None or len(wkb) == 0:
        raise LabelFileError(
            f"{where} is empty: it holds no polygon. Digitise some, or choose another layer."
        )
    geometries = shapely.from_wkb(wkb)
    values = _field_values(field_data[0], info.fields[field]) if field else None
    return _checked(info, where, geometries, values)


def _checked(
    info: LabelLayerInfo, where: str, geometries: np.ndarray, values: np.ndarray | None
) -> LabelFeatures:
    missing = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    if values is not None:
        missing |= np.array([value is None for value in values], dtype=bool)
    kinds = np.array(["None" if m else g.geom_type for g, m in zip(geometries, missing, strict=True)])
    wrong = ~missing & ~np.isin(kinds, [*POLYGONAL, "GeometryCollection"])
    if wrong.any():
        found = ", ".join(sorted(set(kinds[wrong].tolist())))
        raise LabelFileError(
            f"{where} holds {int(wrong.sum())} geometries that are not polygons ({found}). "
            "Labels need areas: buffer points or lines into polygons in QGIS "
            "(Vector > Geoprocessing > Buffer), or choose another layer."
        )
    invalid = ~missing & ~shapely.is_valid(geometries)
    geometries = geometries.copy()
    geometries[invalid] = shapely.make_valid(geometries[invalid])
    polygonal = np.array(
        [_polygonal_part(g) if not m else None for g, m in zip(geometries, missing, strict=True)]
    )
    keep = np.array([g is not None and not g.is_empty for g in polygonal], dtype=bool)
    if not keep.any():
        raise LabelFileError(
            f"{where} holds no usable polygon (every feature lacks a geometry or a class value). "
            "Check the layer in QGIS."
        )
    return LabelFeatures(
        path=info.path,
        layer=info.layer,
        crs_wkt=str(info.crs_wkt),
        geometries=polygonal[keep],
        values=None if values is None else values[keep],
        repaired=int(invalid.sum()),
        dropped=int((~keep).sum()),
    )


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry | None:
    """The polygons of a geometry (a repaired bow tie becomes a MultiPolygon plus stray lines)."""
    if geometry.geom_type in POLYGONAL:
        return geometry
    parts = [part for part in shapely.get_parts(geometry) if part.geom_type in POLYGONAL]
    return shapely.multipolygons(parts) if parts else None


def _choose_layer(path: Path, layers: tuple[str, ...], layer: str | None) -> str:
    if layer is not None:
        if layer not in layers:
            raise LabelFileError(
                f"{path} has no layer {layer!r}; its layers are: {', '.join(layers)}. Choose one of them."
            )
        return layer
    if len(layers) > 1:
        raise LabelFileError(
            f"{path} holds several layers ({', '.join(layers)}); choose the one with the labels "
            "(--label-layer NAME)."
        )
    return layers[0]


def _field_kind(dtype: str) -> str:
    """``text``, ``integer``, ``float`` (usable as class ids when every value is whole) or ``other``."""
    if dtype.startswith(("int", "uint")):
        return "integer"
    if dtype == "object":
        return "text"
    if dtype.startswith("float"):
        return "float"
    return "other"


def _field_values(raw: np.ndarray, kind: str) -> np.ndarray:
    """Class values as Python objects: str for text, int for numbers, None where missing."""
    if kind == "text":
        return np.array([None if v is None else str(v) for v in raw], dtype=object)
    floats = raw.astype(np.float64)
    return np.array([None if not np.isfinite(v) else v for v in floats], dtype=object)


def _crs_wkt(crs: str | None) -> str | None:
    if not crs:
        return None
    return CRS.from_user_input(crs).to_wkt()


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
