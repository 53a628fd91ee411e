"""The Data page in the real window: drops, refused files, previews, recent files, removal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from engine.synthetic import write_scene
from modelai_desktop.settings import AppSettings

pytestmark = pytest.mark.gui


def file_drag(paths: list[Path]) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path)) for path in paths])
    return mime


def drop_on(window, paths: list[Path]) -> bool:
    """Drags ``paths`` over the window and drops them; returns whether the drag was accepted."""
    mime = file_drag(paths)
    point = QPointF(window.width() / 2, window.height() / 2)
    actions = Qt.DropAction.CopyAction
    buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    enter = QDragEnterEvent(point.toPoint(), actions, mime, buttons, modifiers)
    QApplication.sendEvent(window, enter)
    QApplication.sendEvent(window, QDropEvent(point, actions, mime, buttons, modifiers))
    return enter.isAccepted()


@pytest.fixture
def mixed_drop(tmp_path, write_raster):
    """Two rasters, a folder with a third, a text file and a .tif that is not a raster."""
    scene = write_scene(tmp_path / "scene", "field", size=(64, 64), seed=3).image
    small = write_raster("small.tif", np.full((1, 20, 30), 7, dtype=np.uint8))
    folder = tmp_path / "folder"
    write_raster("folder/inside.tif", np.ones((2, 10, 10), dtype=np.float32))
    notes = tmp_path / "notes.txt"
    notes.write_text("not a raster")
    fake = tmp_path / "fake.tif"
    fake.write_bytes(b"this is not a TIFF at all")
    return {"rasters": [scene, small, folder / "inside.tif"], "drop": [scene, notes, small, folder, fake]}


def test_dropping_rasters_and_other_files_lists_the_rasters_and_names_the_rest(
    window, mixed_drop, run, until
):
    page = window.data_page

    async def scenario():
        assert drop_on(window, mixed_drop["drop"])
        await until(lambda: page.banner.text(), "the refusal message")
        await until(lambda: page.raster_view.preview is not None, "the first preview")

    run(scenario())
    assert [info.path for info in page.rasters()] == [path.resolve() for path in mixed_drop["rasters"]]
    assert page.table.raster_model.data(page.table.raster_model.index(1, 1)) == "30 × 20"
    assert "notes.txt" in page.banner.text() and "fake.tif" in page.banner.text()
    assert "Added 3 rasters; 2 not added" in window.statusBar().currentMessage()
    assert page.raster_view.preview.info.path == mixed_drop["rasters"][0].resolve()
    assert page.count_label.text() == "3 rasters"


def test_a_drag_without_local_files_is_refused(window):
    mime = QMimeData()
    mime.setUrls([QUrl("https://example.com/scene.tif")])
    enter = QDragEnterEvent(
        QPointF(10, 10).toPoint(),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(window, enter)
    assert not enter.isAccepted()


def test_selecting_another_raster_previews_it(window, mixed_drop, run, until):
    page = window.data_page
    second = mixed_drop["rasters"][1].resolve()

    async def scenario():
        await page.load_paths(mixed_drop["rasters"])
        page.table.select_path(second)
        await until(
            lambda: page.raster_view.preview is not None and page.raster_view.preview.info.path == second,
            "the second preview",
        )

    run(scenario())
    assert page.raster_view.rendered_rgba().shape == (20, 30, 4)


def test_recent_files_are_remembered_and_reopen(window, mixed_drop, settings, run, until):
    page = window.data_page
    first = mixed_drop["rasters"][0].resolve()

    async def scenario():
        await page.load_paths([first])
        page.table.selectRow(0)
        page.table.remove_selected()
        assert page.rasters() == []
        window.recent_menu.aboutToShow.emit()
        reopen = next(action for action in window.recent_menu.actions() if action.text() == first.name)
        reopen.trigger()
        await until(lambda: len(page.rasters()) == 1, "the reopened raster")
        await until(lambda: page.raster_view.preview is not None, "its preview")

    run(scenario())
    settings.sync()
    assert AppSettings(settings.path).recent_files() == [first]


def test_adding_a_listed_raster_again_keeps_one_row(window, mixed_drop, run):
    page = window.data_page
    report = run(page.load_paths(mixed_drop["rasters"][:1] * 2))
    assert len(page.rasters()) == 1 and len(report.already_listed) == 1
    assert not page.banner.text()


def test_an_empty_folder_is_reported(window, tmp_path, run):
    empty = tmp_path / "empty"
    empty.mkdir()
    report = run(window.data_page.load_paths([empty]))
    assert report.refused and "No rasters (.bil/.bip/.bsq/.envi" in window.data_page.banner.text()
