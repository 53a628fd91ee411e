"""Labels from a file, made into the Label page's class ids so they can be edited there.

A vector file (GeoPackage, Shapefile, GeoJSON, FlatGeobuf) goes through the same reading, class
scheme, reprojection and burning as training from polygons (`engine.labels.vector_file`,
`engine.labels.classes`, `engine.labels.rasterize`): pixel centres inside a polygon, the smaller
polygon winning where they overlap. Pixels outside every polygon stay unlabelled: an import adds
labels, it never declares the rest background. A mask GeoTIFF on the raster's grid is read as it is.

Class ids on the page are positions in its class list, so the file's classes are matched to it:

- a text field (or no field: one class named after the layer) matches by name; a name the page
  does not have yet becomes a new class with a new colour;
- an integer field, like a mask, holds the page's class ids themselves; missing classes are added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

from engine.datasets import IGNORE_INDEX
from engine.errors import DatasetError
from engine.labels.classes import class_scheme
from engine.labels.rasterize import burn_window, polygons_on_grid
from engine.labels.store import LabelClass, load_mask
from engine.labels.tiles import TILE, UNLABELLED, LabelTiles
from engine.labels.training import no_overlap_message
from engine.labels.vector_file import (
    LabelFeatures,
    LabelLayerInfo,
    describe_label_file,
    label_layers,
    read_label_features,
)
from engine.rasters.read import RasterInfo
from engine.training.segmentation import default_color

MASK_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class ImportedLabels:
    """Labels in the page's class ids, the page's class list after the import, and what was fixed."""

    tiles: LabelTiles
    classes: list[LabelClass]
    pixels: int
    repaired: int = 0
    dropped: int = 0


def is_mask_file(path: Path) -> bool:
    return path.suffix.lower() in MASK_SUFFIXES


def describe_layers(path: Path) -> dict[str, LabelLayerInfo]:
    """Every layer of a label file with its fields: what the import asks the person to choose from.

    Raises:
        LabelFileError: the file cannot be read as a label file.
    """
    return {layer: describe_label_file(path, layer) for layer in label_layers(Path(path))}


def import_labels(
    path: Path,
    info: RasterInfo,
    classes: Sequence[LabelClass],
    layer: str | None = None,
    field: str | None = None,
) -> ImportedLabels:
    """Reads a label file onto ``info``'s grid in the class ids of ``classes`` (see the module's rules).

    Raises:
        LabelFileError: the file cannot be read or used (see `read_label_features`).
        RasterError: a mask that is not on the raster's grid.
        DatasetError: no polygon reaches the raster, or none covers a pixel centre, or too many classes.
    """
    if is_mask_file(path):
        tiles = load_mask(path, info)
        counts = tiles.class_pixels()
        return ImportedLabels(tiles, _with_ids(list(classes), counts), sum(counts.values()))
    features = read_label_features(path, layer, field)
    page_ids, merged = _page_classes(features, field, classes)
    polygons = polygons_on_grid(features, page_ids, info)
    if polygons is None:
        raise DatasetError(no_overlap_message(features, [info]) + " Nothing was imported.")
    tiles = LabelTiles(info.height, info.width)
    affine = rasterio.Affine(*info.transform)
    for row in range(0, info.height, TILE):
        window = Window(0, row, info.width, min(TILE, info.height - row))
        strip = burn_window(polygons, info, window, affine, UNLABELLED, all_touched=False)
        for col in range(0, info.width, TILE):
            tiles.set_tile((row // TILE, col // TILE), strip[:, col : col + TILE])
    if not tiles.tile_count:
        raise DatasetError(
            f"The polygons of {features.path} reach {info.path.name} but cover no pixel centre of it: they "
            "are smaller than its pixels. Nothing was imported; draw larger polygons."
        )
    tiles.version = 0
    pixels = sum(tiles.class_pixels().values())
    return ImportedLabels(tiles, merged, pixels, features.repaired, features.dropped)


def label_file_classes(
    path: Path, classes: Sequence[LabelClass], layer: str | None = None, field: str | None = None
) -> list[LabelClass]:
    """The page's class list with the classes of a label file's field added (no polygon is burnt)."""
    return _page_classes(read_label_features(path, layer, field), field, classes)[1]


def _page_classes(
    features: LabelFeatures, field: str | None, classes: Sequence[LabelClass]
) -> tuple[np.ndarray, list[LabelClass]]:
    """Each feature's class id on the page, and the page's classes with the file's new ones added."""
    scheme = class_scheme(features, field, "ignore")
    merged = list(classes)
    if features.values is not None and not isinstance(features.values[0], str):
        return scheme.feature_ids, _with_ids(merged, dict.fromkeys(scheme.feature_ids.tolist(), 1))
    known = {label.name: class_id for class_id, label in enumerate(merged)}
    lookup = np.zeros(256, dtype=np.uint8)
    for scheme_id in sorted(set(scheme.feature_ids.tolist())):
        name = scheme.names[scheme_id]
        if name not in known:
            known[name] = len(merged)
            merged.append(LabelClass(name, unused_color(merged)))
        lookup[scheme_id] = known[name]
    _check_count(merged)
    return lookup[scheme.feature_ids], merged


def _with_ids(classes: list[LabelClass], used: dict[int, int]) -> list[LabelClass]:
    """``classes`` extended so that every used class id has a class."""
    while len(classes) <= max(used, default=-1):
        classes.append(LabelClass(f"class {len(classes) + 1}", unused_color(classes)))
    _check_count(classes)
    return classes


def unused_color(classes: Sequence[LabelClass]) -> str:
    """The class palette's colour of the next class id, or of a later one when a class has that colour."""
    taken = {label.color.lower() for label in classes}
    return next(color for index in count(len(classes)) if (color := default_color(index)) not in taken)


def _check_count(classes: list[LabelClass]) -> None:
    if len(classes) > IGNORE_INDEX - 1:
        raise DatasetError(
            f"The labels would need {len(classes)} classes; at most {IGNORE_INDEX - 1} fit. "
            "Choose a field with fewer class values."
        )
