"""The Label page driven as a person would: real mouse and key events on the canvas, real files,
a real training job, and a restart after the app was killed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.labels.store import MASK_NAME, labels_folder, load_classes
from engine.labels.tiles import UNLABELLED
from engine.labels.vector_file import read_label_features
from engine.models.file import read_metadata
from engine.paths import app_home
from engine.synthetic import write_scene
from modelai_desktop.pages.label_page import LabelPage
from modelai_desktop.widgets.label_canvas import VIEW_SETTLE_MS
from modelai_desktop.workers import JobRegistry
from tests.engine.test_labels import scribble

JOB_STOP_MS = 10_000
TRAINING_TIMEOUT_S = 480
# Longer than the 10 ms pyqtgraph waits between the mouse moves it delivers (see drag).
MOVE_INTERVAL_S = 0.015
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def home(isolated_home: Path) -> Path:
    return app_home(isolated_home)


@pytest.fixture
def scene(tmp_path: Path):
    result = write_scene(tmp_path / "scene", "scene", size=(192, 192), seed=3)
    with rasterio.open(result.mask) as dataset:
        return result.image, dataset.read(1)


@pytest.fixture
def page(qtbot, tasks, home):
    jobs = JobRegistry()
    label_page = LabelPage(tasks, home, jobs)
    qtbot.addWidget(label_page)
    label_page.resize(1100, 700)
    label_page.show()
    yield label_page
    assert jobs.stop_all(JOB_STOP_MS)


def screen_point(page: LabelPage, col: float, row: float) -> QPoint:
    scene_point = page.canvas.viewbox.mapViewToScene(QPointF(col, row))
    return page.canvas.graphics.mapFromScene(scene_point)


def drag(page: LabelPage, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
    """A left-button drag from ``start`` to ``end`` (column, row in raster pixels), paced as a hand
    moves: pyqtgraph drops mouse moves that come within 10 ms of the last one (its mouseRateLimit),
    so on a fast CPU an unpaced drag reaches it as a click."""
    viewport = page.canvas.graphics.viewport()
    first, last = screen_point(page, *start), screen_point(page, *end)
    QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, first)
    for step in range(1, steps + 1):
        time.sleep(MOVE_INTERVAL_S)  # QTest's own delay only stamps the event; it does not wait
        QTest.mouseMove(viewport, first + (last - first) * (step / steps))
    QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, last)


def click(page: LabelPage, col: float, row: float) -> None:
    viewport = page.canvas.graphics.viewport()
    QTest.mouseClick(
        viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, screen_point(page, col, row)
    )


def key(page: LabelPage, sequence: Qt.Key, modifiers=Qt.KeyboardModifier.NoModifier) -> None:
    QTest.keyClick(page.canvas.graphics.viewport(), sequence, modifiers)


def write_mask(path: Path, raster: Path, values: np.ndarray) -> Path:
    """A mask GeoTIFF of class ids on the raster's grid (255 = unlabelled)."""
    with rasterio.open(raster) as source:
        profile = {**source.profile, "count": 1, "dtype": "uint8", "nodata": 255}
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values[None])
    return path


async def settle(tasks) -> None:
    """Lets a pending view refresh start and finish, so no task is left for the loop's next run."""
    await asyncio.sleep(3 * VIEW_SETTLE_MS / 1000)
    await tasks.wait_idle()


async def open_scene(page: LabelPage, raster: Path, until) -> None:
    await page.open_raster(raster)
    await until(lambda: page.canvas.visible_window() is not None, "the raster to show")
    await settle(page._tasks)
    page.canvas.graphics.viewport().setFocus()


async def open_scribbled(page: LabelPage, raster: Path, truth: np.ndarray, until) -> None:
    """Opens the scene with sparse scribbles of two classes where the truth has them."""
    await open_scene(page, raster, until)
    for key_, tile in scribble(truth).tiles():
        page.tiles.set_tile(key_, tile)


def test_paint_two_classes_undo_polygon_and_erase_then_autosave(page, tasks, scene, home, run, until):
    raster, _ = scene

    async def scenario() -> None:
        await open_scene(page, raster, until)
        tiles = page.tiles
        drag(page, (20, 30), (120, 30))
        first = tiles.class_pixels()
        assert set(first) == {0} and first[0] > 500
        key(page, Qt.Key.Key_2)
        assert page.classes.current() == 1
        drag(page, (20, 80), (120, 80))
        assert set(tiles.class_pixels()) == {0, 1}
        key(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        assert tiles.class_pixels() == first
        key(page, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert set(tiles.class_pixels()) == {0, 1}

        key(page, Qt.Key.Key_P)
        assert page.canvas.tool == "polygon"
        for corner in ((40, 120), (150, 120), (150, 170)):
            click(page, *corner)
        key(page, Qt.Key.Key_Return)
        assert tiles.read(130, 140, 1, 1)[0, 0] == 1
        assert tiles.read(160, 50, 1, 1)[0, 0] == UNLABELLED

        key(page, Qt.Key.Key_E)
        before = tiles.class_pixels()[0]
        drag(page, (60, 30), (100, 30))
        assert 0 < tiles.class_pixels()[0] < before - 200
        assert tiles.read(30, 80, 1, 1)[0, 0] == UNLABELLED

        await until(lambda: not page.autosave.pending(), "the autosave")
        painted = tiles.read(0, 0, 192, 192)
        mask = labels_folder(home, raster) / MASK_NAME
        with rasterio.open(mask) as saved, rasterio.open(raster) as source:
            assert np.array_equal(saved.read(1), painted)
            assert saved.crs == source.crs and saved.transform == source.transform
            assert saved.nodata == UNLABELLED

        await settle(tasks)

    run(scenario())
    page.grab().save("/tmp/label-page-test.png")


def test_brush_outline_follows_the_cursor_at_brush_size(page, tasks, scene, run, until):
    raster, _ = scene

    async def scenario() -> None:
        await open_scene(page, raster, until)
        page.brush_size.setValue(21)
        page.canvas.move_outline(QPointF(100, 60))
        assert page.canvas.outline_item.isVisible()
        rect = page.canvas.outline_item.rect()
        assert rect.width() == pytest.approx(21) and rect.center().x() == pytest.approx(100, abs=1)

        await settle(tasks)

    run(scenario())


def test_one_class_is_refused_with_a_clear_message(page, tasks, scene, run, until):
    raster, _ = scene

    async def scenario() -> None:
        await open_scene(page, raster, until)
        drag(page, (20, 30), (120, 30))
        page.training.train_button.click()
        assert "Only 'class 1' is labelled" in page.banner.text()
        assert not page.label_jobs.running

        await settle(tasks)

    run(scenario())


def test_train_on_my_labels_shows_uncertainty_and_trains_again_from_its_weights(
    page, scene, home, tasks, qt_loop, until
):
    raster, truth = scene

    async def scenario() -> None:
        await open_scribbled(page, raster, truth, until)
        assert page.training.train_for.currentData() == 120.0, "a time budget by default"
        assert not page.training.epochs.isEnabled()
        page.training.train_for.setCurrentIndex(0)  # epochs, not a time budget: a test stays short
        assert page.training.epochs.isEnabled()
        page.training.epochs.setValue(2)
        page.training.train_button.click()
        await until(lambda: page.label_jobs.model_path is not None, "the training job", timeout=240)
        assert page.label_jobs.model_path.is_file()
        await until(lambda: page.live_prediction is not None, "the uncertainty overlay", timeout=60)
        assert page.training.overlay_kind() == "margin"
        assert page.canvas.overlay_item.image is not None
        overlay = page.canvas.overlay_item.image
        assert overlay.shape[2] == 4 and overlay[..., 3].max() > 0
        first = page.label_jobs.model_path

        page.training.train_for.setCurrentIndex(0)
        page.training.epochs.setValue(1)
        page.training.train_button.click()
        await until(lambda: page.label_jobs.model_path != first, "the second training", timeout=240)
        config = read_metadata(page.label_jobs.model_path).training["config"]
        assert config["init_model"] == str(first)
        await tasks.wait_idle()
        restarted = LabelPage(tasks, home, JobRegistry())
        await restarted.open_raster(raster)
        assert restarted.label_jobs.model_path == page.label_jobs.model_path
        assert restarted.training.predict_button.isEnabled()
        await settle(tasks)

    qt_loop.run_until_complete(asyncio.wait_for(scenario(), TRAINING_TIMEOUT_S))
    page.grab().save("/tmp/label-page-uncertainty.png")
    with open_store(home) as store:
        jobs = store.list_jobs()
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED, JobStatus.SUCCEEDED]
    assert {job.kind for job in jobs} == {"train-segmentation"}


def test_labels_survive_a_kill_and_come_back_at_the_next_start(page, tasks, scene, home, run, until):
    raster, _ = scene
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MODELAI_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.gui.label_child", str(raster)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        painted = child.stdout.readline().strip()
        assert painted.startswith("saved "), painted
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    expected = int(painted.split()[1])

    async def scenario() -> None:
        await open_scene(page, raster, until)
        assert sum(page.tiles.class_pixels().values()) == expected
        assert set(page.tiles.class_pixels()) == {0, 1}

        await settle(tasks)

    run(scenario())


def test_classes_add_rename_recolour_and_delete_with_confirmation(page, tasks, scene, run, until):
    raster, _ = scene
    questions: list[str] = []

    async def scenario() -> None:
        await open_scene(page, raster, until)
        drag(page, (20, 30), (120, 30))
        key(page, Qt.Key.Key_2)
        drag(page, (20, 80), (120, 80))
        page.classes.add_class()
        key(page, Qt.Key.Key_3)
        drag(page, (20, 130), (120, 130))
        assert set(page.tiles.class_pixels()) == {0, 1, 2}
        page.classes.rename(2, "trees")
        page.classes.choose_color = lambda _current: "#123456"
        page.classes.recolor_current()
        assert page.classes.classes()[2].name == "trees" and page.classes.classes()[2].color == "#123456"

        page.classes.confirm = lambda text: questions.append(text) or False
        page.classes.select(1)
        assert not page.classes.delete_current()
        assert set(page.tiles.class_pixels()) == {0, 1, 2}
        before = page.tiles.read(0, 0, 192, 192)
        page.classes.confirm = lambda text: questions.append(text) or True
        assert page.classes.delete_current()
        assert set(page.tiles.class_pixels()) == {0, 1}
        assert [label.name for label in page.classes.classes()] == ["class 1", "trees"]
        # Where the stroke landed depends on the view; what a deletion does to each pixel does not.
        expected = np.where(before == 1, UNLABELLED, np.where(before == 2, 1, before))
        np.testing.assert_array_equal(page.tiles.read(0, 0, 192, 192), expected)
        await page.autosave.flush()
        classes = load_classes(labels_folder(page._home, raster) / "labels.json")
        assert [(label.name, label.color) for label in classes][1] == ("trees", "#123456")

        await settle(tasks)

    run(scenario())
    assert "Delete the class 'class 2'" in questions[0] and "cannot be undone" in questions[0]


def test_zoomed_in_the_raster_is_read_at_full_resolution(page, tasks, tmp_path, run, until):
    scene = write_scene(tmp_path / "big", "big", size=(2500, 2200), seed=1)

    async def scenario() -> None:
        await open_scene(page, scene.image, until)
        overview = page.canvas.overview_item.image
        assert max(overview.shape[:2]) <= 1024
        page.canvas.detail_item.clear()
        page.canvas.viewbox.setRange(xRange=(1000, 1200), yRange=(1000, 1150), padding=0)
        await until(lambda: page.canvas.detail_item.image is not None, "the detail read")
        await until(lambda: page._view_task is None or page._view_task.done(), "the view task")
        window = page.canvas.visible_window()
        detail = page.canvas.detail_item.image
        assert detail.shape[:2] == (int(window.height), int(window.width))
        with rasterio.open(scene.image) as dataset:
            assert dataset.read(1, window=window).shape == detail.shape[:2]

        await settle(tasks)

    run(scenario())


def test_export_and_a_given_mask_and_classes_from_a_model(page, tasks, scene, tmp_path, run, until):
    raster, truth = scene
    given = np.full(truth.shape, 255, np.uint8)
    given[10:20, 10:60] = 0
    given[100:110, 10:60] = 2
    mask = write_mask(tmp_path / "given_mask.tif", raster, given)

    async def scenario() -> None:
        await page.open_raster(raster, mask)
        assert np.array_equal(page.tiles.read(0, 0, 192, 192), given)
        assert len(page.classes.classes()) == 3
        exported = tmp_path / "out" / "exported_mask.tif"
        await page.export_labels(exported)
        with rasterio.open(exported) as dataset, rasterio.open(raster) as source:
            assert np.array_equal(dataset.read(1), given)
            assert dataset.transform == source.transform and dataset.crs == source.crs
        await page.export_labels(polygons)
        assert polygons.is_file()
        await page.autosave.flush()
        assert (labels_folder(page._home, raster) / MASK_NAME).is_file()

        await settle(tasks)

    polygons = tmp_path / "out" / "exported_labels.gpkg"
    run(scenario())
    names = {label.name for index, label in enumerate(page.classes.classes()) if index in (0, 2)}
    assert set(read_label_features(polygons, field="class_name").values.tolist()) == names


def test_screenshot_of_the_label_page_draws_the_given_labels(scene, tmp_path):
    raster, truth = scene
    given = np.full(truth.shape, 255, np.uint8)
    given[40:150, 40:150] = 1
    mask = write_mask(tmp_path / "labels.tif", raster, given)
    out = tmp_path / "label.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    command = [sys.executable, "-m", "modelai_desktop", "--home", str(tmp_path / "home"), "--screenshot"]
    command += [str(out), "--page", "label", str(raster), "--labels", str(mask)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    blue = [image.pixelColor(x, 400) for x in range(500, 1200, 10)]
    assert sum(color.blue() > 150 and color.red() < 120 for color in blue) > 10, "the labels are not drawn"
