"""Labels from files in the Label page's class ids (`engine.labels.label_import`) and their merge."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from engine.errors import DatasetError, RasterError
from engine.labels.label_import import describe_layers, import_labels, label_file_classes
from engine.labels.store import LabelClass
from engine.labels.tiles import UNLABELLED, LabelTiles
from engine.rasters.read import read_info
from engine.synthetic import CRS_CODE, write_scene
from tests.engine.label_files import write_labels

PAGE = [LabelClass("class 1", "#7fbf4d"), LabelClass("water", "#2a6fe8")]
X0, Y0 = 500000.0, 4500000.0  # write_scene's corner; pixels of 10 m


@pytest.fixture
def raster(tmp_path: Path) -> Path:
    return write_scene(tmp_path / "scene", "scene", size=(64, 64), seed=2).image


def box(left: int, top: int, right: int, bottom: int) -> shapely.Polygon:
    """Columns left..right and rows top..bottom of the scene, in its CRS."""
    return shapely.box(X0 + 10 * left, Y0 - 10 * bottom, X0 + 10 * right, Y0 - 10 * top)


def test_an_integer_field_holds_the_page_class_ids_and_missing_classes_are_added(raster, tmp_path):
    path = write_labels(
        tmp_path / "ids.geojson", [box(0, 0, 10, 10), box(20, 20, 30, 30)], CRS_CODE, {"class_id": [1, 3]}
    )
    imported = import_labels(path, read_info(raster), PAGE, field="class_id")
    values = imported.tiles.read(0, 0, 64, 64)
    assert values[5, 5] == 1 and values[25, 25] == 3 and values[15, 15] == UNLABELLED
    assert [label.name for label in imported.classes] == ["class 1", "water", "class 3", "class 4"]
    assert len({label.color for label in imported.classes}) == 4, "new classes get new colours"
    assert imported.pixels == 200


def test_without_a_field_every_polygon_is_one_class_named_after_the_layer(raster, tmp_path):
    path = write_labels(tmp_path / "huts.gpkg", [box(0, 0, 4, 4)], CRS_CODE, layer="huts")
    assert list(describe_layers(path)) == ["huts"]
    imported = import_labels(path, read_info(raster), PAGE)
    assert imported.classes[-1].name == "huts" and imported.tiles.class_pixels() == {2: 16}
    assert [label.name for label in label_file_classes(path, imported.classes)] == [
        "class 1",
        "water",
        "huts",
    ]


def test_a_mask_on_the_grid_imports_as_it_is_and_one_off_the_grid_is_refused(raster, tmp_path):
    with rasterio.open(raster) as source:
        profile = {**source.profile, "count": 1, "dtype": "uint8", "nodata": 255}
    values = np.full((64, 64), 255, np.uint8)
    values[:8, :8] = 4
    with rasterio.open(tmp_path / "mask.tif", "w", **profile) as mask:
        mask.write(values[None])
    imported = import_labels(tmp_path / "mask.tif", read_info(raster), PAGE)
    np.testing.assert_array_equal(imported.tiles.read(0, 0, 64, 64), values)
    assert len(imported.classes) == 5
    with rasterio.open(tmp_path / "small.tif", "w", **{**profile, "width": 32}) as mask:
        mask.write(values[None, :, :32])
    with pytest.raises(RasterError, match="not a label mask"):
        import_labels(tmp_path / "small.tif", read_info(raster), PAGE)


def test_polygons_smaller_than_a_pixel_import_nothing_and_say_why(raster, tmp_path):
    tiny = shapely.box(X0 + 12, Y0 - 18, X0 + 14, Y0 - 16)  # 2 m inside a 10 m pixel, off its centre
    path = write_labels(tmp_path / "tiny.gpkg", [tiny], CRS_CODE)
    with pytest.raises(DatasetError, match="cover no pixel centre"):
        import_labels(path, read_info(raster), PAGE)


def test_paste_draws_only_labelled_pixels_and_is_one_undoable_stroke():
    tiles = LabelTiles(600, 600)
    tiles.begin_stroke()
    tiles.paint_polygon([(0, 0), (0, 300), (300, 300), (300, 0)], 0)
    tiles.end_stroke()
    before = tiles.read(0, 0, 600, 600)
    other = LabelTiles(600, 600)
    other.paint_polygon([(250, 250), (250, 550), (550, 550), (550, 250)], 1)
    tiles.begin_stroke()
    tiles.paste(other)
    assert tiles.end_stroke()
    merged = tiles.read(0, 0, 600, 600)
    pasted = other.read(0, 0, 600, 600)
    np.testing.assert_array_equal(merged, np.where(pasted != UNLABELLED, pasted, before))
    assert tiles.undo()
    np.testing.assert_array_equal(tiles.read(0, 0, 600, 600), before)
