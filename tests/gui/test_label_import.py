"""Importing labels on the Label page: polygons in another CRS land where they are, merge into what
was painted as one undoable step, give the page their class names, and a file that misses the raster
changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
import shapely
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from rasterio.crs import CRS

from engine.labels.rasterize import polygons_on_grid, rasterize_mask, reproject
from engine.labels.store import MASK_NAME, labels_folder, load_classes
from engine.labels.tiles import UNLABELLED
from engine.labels.vector_file import read_label_features
from engine.rasters.read import read_info
from engine.synthetic import CRS_CODE, PIXEL_SIZE
from modelai_desktop.widgets.label_import_dialog import ImportChoice, ImportDialog
from tests.engine.label_files import write_labels
from tests.gui import test_label_page as label_page_tests
from tests.gui.test_label_page import key, open_scene, settle

home, page, scene = label_page_tests.home, label_page_tests.page, label_page_tests.scene  # its fixtures

ORIGIN = (500000.0, 4500000.0)  # write_scene's upper-left corner
SIZE = 192


def map_xy(col: float, row: float) -> tuple[float, float]:
    """A raster position in the scene's UTM coordinates."""
    return ORIGIN[0] + col * PIXEL_SIZE, ORIGIN[1] - row * PIXEL_SIZE


def pixel_box(left: int, top: int, right: int, bottom: int) -> shapely.Polygon:
    """A box over raster columns left..right and rows top..bottom, in the scene's UTM coordinates."""
    return shapely.box(*map_xy(left, bottom), *map_xy(right, top))


def in_wgs84(geometries: list[shapely.Geometry]) -> list[shapely.Geometry]:
    moved = reproject(np.array(geometries), CRS.from_string(CRS_CODE).to_wkt(), CRS.from_epsg(4326).to_wkt())
    return list(moved)


def labels_in_wgs84(path: Path, layer: str | None = None, append: bool = False) -> Path:
    """Water (a box, and a box with a hole) and trees, drawn on the UTM scene and saved in EPSG:4326."""
    holed = shapely.Polygon(pixel_box(120, 20, 180, 80).exterior, [pixel_box(140, 40, 160, 60).exterior])
    triangle = shapely.Polygon([map_xy(100, 100), map_xy(170, 100), map_xy(170, 170)])
    geometries = in_wgs84([pixel_box(20, 20, 60, 70), triangle, holed])
    kinds = {"kind": ["water", "trees", "water"]}
    return write_labels(path, geometries, "EPSG:4326", kinds, layer=layer, append=append)


def paint_before(page) -> np.ndarray:
    """Class 1 strokes: one apart from the polygons, one the water box partly covers."""
    tiles = page.tiles
    for corners in (((100, 10), (110, 10), (110, 50), (100, 50)), ((30, 10), (40, 10), (40, 40), (30, 40))):
        tiles.begin_stroke()
        tiles.paint_polygon(corners, 0)
        tiles.end_stroke()
    return tiles.read(0, 0, SIZE, SIZE)


def expected_import(
    path: Path, raster: Path, page_ids: list[int], tmp_path: Path, layer: str | None = None
) -> np.ndarray:
    """The polygons burnt by `engine.labels.rasterize` itself, with the page's class ids."""
    info = read_info(raster)
    features = read_label_features(path, layer, field="kind")
    polygons = polygons_on_grid(features, np.array(page_ids, dtype=np.uint8), info)
    target = tmp_path / "expected.tif"
    rasterize_mask(polygons, info, target, UNLABELLED, all_touched=False)
    with rasterio.open(target) as dataset:
        return dataset.read(1)


def test_polygons_in_wgs84_land_on_the_utm_raster_as_one_undoable_step(
    page, tasks, scene, home, tmp_path, run, until
):
    raster, _ = scene
    path = labels_in_wgs84(tmp_path / "labels.gpkg")
    messages: list[str] = []
    page.importer.imported.connect(messages.append)

    async def scenario() -> None:
        await open_scene(page, raster, until)
        page.classes.rename(1, "water")
        before = paint_before(page)
        assert await page.importer.run(path, field="kind")
        burnt = expected_import(path, raster, [1, 2, 1], tmp_path)
        expected = np.where(burnt != UNLABELLED, burnt, before)
        labels = page.tiles.read(0, 0, SIZE, SIZE)
        np.testing.assert_array_equal(labels, expected)
        assert labels[45, 40] == 1 and labels[150, 160] == 2, "where the water box and the triangle are"
        assert labels[50, 150] == UNLABELLED and labels[30, 130] == 1, "the hole stays unlabelled"
        assert labels[35, 15] == 0 and labels[35, 30] == 1, "painting kept outside, polygons over it"
        assert [label.name for label in page.classes.classes()] == ["class 1", "water", "trees"]
        assert "Ctrl+Z" in messages[0]

        key(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), before)
        key(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), expected)

        await until(lambda: not page.autosave.pending(), "the autosave")
        folder = labels_folder(home, raster)
        with rasterio.open(folder / MASK_NAME) as saved:
            np.testing.assert_array_equal(saved.read(1), expected)
        assert [label.name for label in load_classes(folder / "labels.json")][2] == "trees"
        await settle(tasks)

    run(scenario())
    page.grab().save("/tmp/label-page-import.png")


def test_the_layer_and_field_are_asked_and_classes_can_come_alone(page, tasks, scene, tmp_path, run, until):
    raster, _ = scene
    path = tmp_path / "two_layers.gpkg"
    write_labels(path, in_wgs84([pixel_box(0, 0, 10, 10)]), "EPSG:4326", {"kind": ["road"]}, layer="roads")
    labels_in_wgs84(path, layer="fields", append=True)
    asked = []
    answers = [ImportChoice("fields", "kind", classes_only=True), ImportChoice("fields", "kind")]

    def answer(layers):
        asked.append(layers)
        dialog = ImportDialog(layers)
        assert dialog.layer.count() == 2 and dialog.field.count() == 2, "one class, or the kind field"
        return answers[len(asked) - 1]

    page.importer.ask = answer

    async def scenario() -> None:
        await open_scene(page, raster, until)
        await page.importer.prepare(path)
        await until(lambda: len(page.classes.classes()) == 4, "the classes of the file")
        assert [label.name for label in page.classes.classes()[2:]] == ["trees", "water"]
        assert page.tiles.tile_count == 0, "classes only: no polygon imported"

        await page.importer.prepare(path)
        await until(lambda: page.tiles.tile_count > 0, "the polygons")
        burnt = expected_import(path, raster, [3, 2, 3], tmp_path, layer="fields")
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), burnt)
        assert len(page.classes.classes()) == 4, "the classes taken before are reused"
        await settle(tasks)

    run(scenario())
    assert set(asked[0]) == {"roads", "fields"}


def test_a_mask_on_the_grid_merges_as_one_step_too(page, tasks, scene, tmp_path, run, until):
    raster, _ = scene
    given = np.full((SIZE, SIZE), UNLABELLED, np.uint8)
    given[100:120, 0:30] = 1
    mask = label_page_tests.write_mask(tmp_path / "colleague.tif", raster, given)

    async def scenario() -> None:
        await open_scene(page, raster, until)
        before = paint_before(page)
        await page.importer.prepare(mask)
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), np.where(given == 1, 1, before))
        assert page.canvas.undo()
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), before)
        await settle(tasks)

    run(scenario())


def test_polygons_that_miss_the_raster_change_nothing(page, tasks, scene, tmp_path, run, until):
    raster, _ = scene
    far_away = write_labels(tmp_path / "alps.geojson", [shapely.box(7.0, 46.0, 7.1, 46.1)], "EPSG:4326")

    async def scenario() -> None:
        await open_scene(page, raster, until)
        before = paint_before(page)
        version, classes = page.tiles.version, page.classes.classes()
        assert not await page.importer.run(far_away)
        assert "overlaps none" in page.banner.text() and "Nothing was imported" in page.banner.text()
        assert page.tiles.version == version and page.classes.classes() == classes
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), before)
        await settle(tasks)

    run(scenario())


def test_polygons_given_at_open_go_onto_the_saved_labels_and_a_bad_file_loses_none(
    page, tasks, scene, tmp_path, run, until
):
    raster, _ = scene
    far_away = write_labels(tmp_path / "alps.fgb", [shapely.box(7.0, 46.0, 7.1, 46.1)], "EPSG:4326")
    near = write_labels(tmp_path / "near.fgb", in_wgs84([pixel_box(100, 100, 120, 120)]), "EPSG:4326")

    async def scenario() -> None:
        await open_scene(page, raster, until)
        before = paint_before(page)
        await page.autosave.flush()
        await page.open_raster(raster, far_away)
        assert "overlaps none" in page.banner.text()
        np.testing.assert_array_equal(page.tiles.read(0, 0, SIZE, SIZE), before)
        await page.open_raster(raster, near)
        labels = page.tiles.read(0, 0, SIZE, SIZE)
        assert labels[110, 110] == 2 and page.classes.classes()[2].name == "near"
        np.testing.assert_array_equal(labels[:100], before[:100])
        await settle(tasks)

    run(scenario())


def test_screenshot_of_the_label_page_draws_polygons_from_a_vector_file(scene, tmp_path):
    raster, _ = scene
    footprint = in_wgs84([pixel_box(40, 40, 150, 150)])
    polygons = write_labels(tmp_path / "labels.fgb", footprint, "EPSG:4326", {"class_id": [1]})
    out = tmp_path / "label.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-m", "modelai_desktop", "--home", str(tmp_path / "home"), "--screenshot"]
    command += [
        str(out),
        "--page",
        "label",
        str(raster),
        "--labels",
        str(polygons),
        "--label-field",
        "class_id",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Unhandled error" not in result.stderr, result.stderr
    (saved,) = (tmp_path / "home").glob("**/labels.tif")
    with rasterio.open(saved) as mask:
        assert mask.read(1)[95, 95] == 1, "the imported labels are saved before the window closes"
    image = QImage(str(out))
    blue = [image.pixelColor(x, 400) for x in range(500, 1200, 10)]
    assert sum(color.blue() > 150 and color.red() < 120 for color in blue) > 10, "the labels are not drawn"
