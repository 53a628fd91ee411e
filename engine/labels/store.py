"""Painted labels on disk: a mask GeoTIFF on the raster's grid plus the class names and colours.

Each labelled raster gets a folder under ``<data folder>/labels/``, named after the raster and a
hash of its full path, so the labels come back at the next start tied to their raster. The mask is
exactly what ``modelai train segmentation IMAGES MASKS`` takes: one uint8 band, 255 = unlabelled
(also its nodata), the raster's size, CRS and transform, tiled and DEFLATE-compressed, with a colour
table. Untouched tiles are left out of the file (GDAL's sparse files), so saving labels of a
20000 x 20000 raster writes only the painted tiles. Every write goes to a temporary name and is
renamed over the old file, so a crash mid-save leaves the previous labels intact.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from engine.errors import OutputError, RasterError
from engine.inference.outputs import color_table
from engine.labels.tiles import TILE, UNLABELLED, LabelTiles
from engine.rasters.read import RasterInfo, first_line, open_raster, read_info
from engine.vectorize.prediction import write_class_polygons

LABELS_FOLDER = "labels"
MASK_NAME = "labels.tif"
CLASSES_NAME = "labels.json"
CLASSES_FORMAT = 1
LAST_MODEL_NAME = "last_model.txt"


@dataclass(frozen=True)
class LabelClass:
    """A class the person paints: its id is its position in the class list."""

    name: str
    color: str


def labels_folder(home: Path, raster: Path) -> Path:
    """Where the labels of ``raster`` live in the data folder ``home``."""
    resolved = raster.expanduser().resolve()
    digest = hashlib.sha1(str(resolved).encode()).hexdigest()[:10]
    return home / LABELS_FOLDER / f"{resolved.stem}-{digest}"


def mask_profile(info: RasterInfo) -> dict[str, object]:
    """The GeoTIFF profile of a label mask on ``info``'s grid."""
    profile: dict[str, object] = {
        "driver": "GTiff",
        "width": info.width,
        "height": info.height,
        "count": 1,
        "dtype": "uint8",
        "nodata": UNLABELLED,
        "tiled": True,
        "blockxsize": TILE,
        "blockysize": TILE,
        "compress": "deflate",
        "sparse_ok": True,
        "transform": rasterio.Affine(*info.transform),
    }
    if info.crs_wkt:
        profile["crs"] = rasterio.crs.CRS.from_wkt(info.crs_wkt)
    return profile


def save_mask(path: Path, info: RasterInfo, tiles: LabelTiles, classes: Sequence[LabelClass]) -> None:
    """Writes labels (a `LabelTiles.copy` snapshot) atomically as a mask GeoTIFF on ``info``'s grid.

    Raises:
        OutputError: the folder is not writable or the disk is full; the old file is kept.
    """

    def write(temporary: Path) -> None:
        with rasterio.open(temporary, "w", **mask_profile(info)) as dataset:
            colors = {class_id: label.color for class_id, label in enumerate(classes)}
            if colors:
                dataset.write_colormap(1, color_table(colors, UNLABELLED))
            for key, values in tiles.tiles():
                row, col, height, width = tiles.tile_window(key)
                dataset.write(values[None], window=Window(col, row, width, height))

    write_atomically(path, write)


def save_label_polygons(
    path: Path, info: RasterInfo, tiles: LabelTiles, classes: Sequence[LabelClass]
) -> int:
    """Writes labels (a `LabelTiles.copy` snapshot) as a GeoPackage of polygons, one feature per
    connected region with its class id, class name and area, styled with the class colours for QGIS;
    returns how many polygons were written. Unlabelled pixels become no polygon.

    Raises:
        OutputError: the folder is not writable or the disk is full.
    """
    with tempfile.TemporaryDirectory(prefix="modelai-labels-") as scratch:
        mask = Path(scratch) / f"{path.stem}.tif"
        save_mask(mask, info, tiles, classes)
        described = [(class_id, label.name, label.color) for class_id, label in enumerate(classes)]
        return write_class_polygons(mask, described, path)


def save_classes(path: Path, raster: Path, classes: Sequence[LabelClass]) -> None:
    """Writes the class names and colours (and which raster they belong to) beside the mask, atomically."""
    document = {
        "format": CLASSES_FORMAT,
        "raster": str(raster.expanduser().resolve()),
        "classes": [asdict(label) for label in classes],
    }
    write_atomically(path, lambda temporary: temporary.write_text(json.dumps(document, indent=1), "utf-8"))


def load_classes(path: Path) -> list[LabelClass]:
    """The classes saved by `save_classes`; an empty list when there is no such file.

    Raises:
        RasterError: the file is damaged (the message says to delete it).
    """
    if not path.is_file():
        return []
    try:
        document = json.loads(path.read_text("utf-8"))
        return [LabelClass(str(item["name"]), str(item["color"])) for item in document["classes"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RasterError(
            f"{path}: the label classes cannot be read ({exc}). Delete the file to start the classes anew."
        ) from exc


def save_last_model(folder: Path, model: Path) -> None:
    """Remembers the latest model trained on these labels, so the next run can start from it."""
    write_atomically(folder / LAST_MODEL_NAME, lambda temporary: temporary.write_text(str(model), "utf-8"))


def load_last_model(folder: Path) -> Path | None:
    """The latest model trained on these labels, if it is still there."""
    try:
        model = Path((folder / LAST_MODEL_NAME).read_text("utf-8").strip())
    except OSError:
        return None
    return model if model.is_file() else None


def load_mask(path: Path, info: RasterInfo, tile: int = TILE) -> LabelTiles:
    """Reads a mask GeoTIFF on ``info``'s grid into label tiles (only tiles holding a label are kept).

    Raises:
        RasterError: the mask cannot be read, or it is not on the raster's grid.
    """
    mask = read_info(path)
    same_grid = (mask.width, mask.height) == (info.width, info.height) and np.allclose(
        mask.transform, info.transform, rtol=0, atol=1e-6 * max(info.pixel_size)
    )
    if not same_grid or mask.count != 1:
        raise RasterError(
            f"{path} is not a label mask of {info.path.name}: it has {mask.count} band(s), "
            f"{mask.width}x{mask.height} pixels and must have 1 band on the raster's grid "
            f"({info.width}x{info.height}, same transform). Export the mask on the image's grid."
        )
    tiles = LabelTiles(info.height, info.width, tile)
    with open_raster(path) as dataset:
        try:
            for tile_row in range(-(-info.height // tile)):
                for tile_col in range(-(-info.width // tile)):
                    row, col, height, width = tiles.tile_window((tile_row, tile_col))
                    values = dataset.read(1, window=Window(col, row, width, height))
                    if dataset.nodata is not None and dataset.nodata != UNLABELLED:
                        values[values == dataset.nodata] = UNLABELLED
                    tiles.set_tile((tile_row, tile_col), values)
        except RasterioError as exc:
            raise RasterError(
                f"{path}: the labels cannot be read ({first_line(exc)}). The file is damaged; "
                "export your labels again or delete it."
            ) from exc
    tiles.version = 0
    return tiles


def write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Calls ``write`` with a temporary path beside ``path``, then renames it over ``path``.

    Raises:
        OutputError: the write failed (the message names the file and the likely fix).
    """
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(temporary)
        temporary.replace(path)
    except (OSError, RasterioError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise OutputError(
            f"Cannot save the labels to {path}: {reason}. Free disk space or choose a writable data folder."
        ) from exc
    finally:
        if temporary.is_file():
            temporary.unlink()
