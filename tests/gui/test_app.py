"""The application around the pages: command line, screenshot, navigation, error reporting, settings."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QMessageBox

from engine.errors import RasterError
from engine.synthetic import write_scene
from engine.training.config import TrainConfig
from modelai_desktop import file_dialogs
from modelai_desktop.app import ErrorReporter
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.logging_setup import LOG_FILE_NAME, configure_logging
from modelai_desktop.main_window import DEFAULT_SIZE, MainWindow
from modelai_desktop.settings import SETTINGS_VERSION, VERSION_KEY, AppSettings

pytestmark = pytest.mark.gui


def run_desktop(home, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MODELAI_HOME": str(home)}
    command = [sys.executable, "-m", "modelai_desktop", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)


def test_screenshot_saves_the_window_with_the_preview(tmp_path, write_raster):
    gradient = np.linspace(0, 250, 40, dtype=np.uint8)
    red_to_the_right = np.stack([np.tile(gradient, (40, 1))] + [np.tile(gradient[::-1], (40, 1))] * 2)
    raster = write_raster("red.tif", red_to_the_right)
    out = tmp_path / "window.png"
    result = run_desktop(tmp_path / "home", "--screenshot", str(out), str(raster), "--bands", "1,2,3")
    assert result.returncode == 0, result.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (DEFAULT_SIZE.width(), DEFAULT_SIZE.height())
    reds = [image.pixelColor(x, 560) for x in range(300, 1200, 10)]
    assert any(color.red() > 200 and color.green() < 40 for color in reds), "the preview is not drawn"
    assert (tmp_path / "home" / "logs" / LOG_FILE_NAME).exists()


def test_screenshot_of_a_page_that_does_not_exist_fails_clearly(tmp_path):
    result = run_desktop(tmp_path / "home", "--screenshot", str(tmp_path / "x.png"), "--page", "settings")
    assert result.returncode == 2
    assert "invalid choice: 'settings'" in result.stderr
    assert not (tmp_path / "x.png").exists()


def test_navigation_lists_every_page_in_order(window):
    assert window.page_names() == ["Data", "Train", "Predict", "Label", "Jobs", "Models"]
    assert window.show_page("jobs") and window.current_page_name() == "Jobs"
    assert not window.show_page("settings")
    with pytest.raises(ValueError, match="already exists"):
        window.add_page("Data", QLabel("again"))


def test_window_size_fits_the_screen_and_is_remembered(window, settings, qtbot, tmp_path):
    window.restore_geometry()
    screen = window.screen().availableGeometry()
    assert window.width() <= min(DEFAULT_SIZE.width(), screen.width() * 0.9)
    assert window.height() <= min(DEFAULT_SIZE.height(), screen.height() * 0.9)
    window.show()
    chosen = window.minimumHeight() + 40
    window.resize(window.width(), chosen)
    window.close()
    again = MainWindow(settings, tmp_path / "logs")
    qtbot.addWidget(again)
    again.restore_geometry()
    assert again.height() == chosen


def test_an_error_escaping_a_task_is_logged_and_shown_without_stopping(window, tmp_path, run, caplog):
    reporter = ErrorReporter(window, tmp_path / "logs" / LOG_FILE_NAME)
    tasks = BackgroundTasks(on_error=lambda error: reporter(type(error), error, error.__traceback__))

    async def failing() -> None:
        raise ZeroDivisionError("division by zero in a slot")

    async def scenario() -> None:
        await tasks.wait_idle()
        tasks.start(failing(), name="failing")
        await tasks.wait_idle()
        await tasks.aclose()

    with caplog.at_level(logging.ERROR):
        run(scenario())
    boxes = [box for box in window.findChildren(QMessageBox) if box.isVisible()]
    assert boxes and not boxes[0].isModal()
    assert "ZeroDivisionError: division by zero in a slot" in boxes[0].text()
    assert "ZeroDivisionError" in caplog.text
    reporter(RasterError, RasterError("a.tif: not a raster. Export it again."), None)
    assert reporter.last_message == "a.tif: not a raster. Export it again."
    assert window.statusBar().currentMessage() == "a.tif: not a raster. Export it again."


def test_logging_goes_to_a_rotating_file(tmp_path):
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        log_file = configure_logging(tmp_path / "logs")
        configure_logging(tmp_path / "logs")
        logging.getLogger("modelai_desktop.test").warning("written once")
    finally:
        for handler in [handler for handler in root.handlers if handler not in before]:
            root.removeHandler(handler)
            handler.close()
    assert log_file.read_text(encoding="utf-8").count("written once") == 1


def test_settings_carry_a_version_and_survive_a_newer_app(tmp_path):
    path = tmp_path / "settings.ini"
    settings = AppSettings(path)
    settings.add_recent_files([tmp_path / "a.tif", tmp_path / "b.tif", tmp_path / "a.tif"])
    settings.sync()
    assert AppSettings(path).recent_files() == [tmp_path / "a.tif", tmp_path / "b.tif"]
    assert not AppSettings(path).read_only

    written_by_newer_app = QSettings(str(path), QSettings.Format.IniFormat)
    written_by_newer_app.setValue(VERSION_KEY, SETTINGS_VERSION + 1)
    written_by_newer_app.sync()
    newer = AppSettings(path)
    assert newer.read_only
    newer.clear_recent_files()
    newer.sync()
    assert AppSettings(path).recent_files() == [tmp_path / "a.tif", tmp_path / "b.tif"]


def test_the_help_menu_runs_the_self_test_and_shows_its_checks(window, run):
    report = run(window.run_self_test())
    assert report.passed, report.summary()
    assert window.self_test_action.isEnabled()
    box = window.self_test_box
    assert box.text().startswith(f"All {len(report.results)} checks passed")
    assert "PASS" in box.detailedText() and "CPU" in box.detailedText()
    box.close()


def test_a_restart_brings_back_the_rasters_the_training_settings_and_the_last_folder(
    window, settings, qtbot, run, until, tmp_path
):
    scenes = tmp_path / "scenes"
    for index in range(2):
        write_scene(scenes, f"scene{index}", size=(64, 64), seed=index)
    run(window.data_page.load_paths([scenes / "images"]))
    config = TrainConfig(
        task="segmentation",
        images=[scenes / "images"],
        masks=[scenes / "masks"],
        output=tmp_path / "models" / "kept.safetensors",
        epochs=7,
        lr=0.004,
    )
    window.train_page.training_started.emit(config)  # as Start training does
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "kept.safetensors").write_bytes(b"the model that run saved")
    settings.set_last_folder(scenes / "masks")
    window.close()

    again = MainWindow(settings, tmp_path / "logs")
    qtbot.addWidget(again)
    again.restore_session()
    page = again.train_page

    async def scenario() -> None:
        await until(lambda: len(again.data_page.rasters()) == 2, "the last session's rasters")
        await until(lambda: page.pairing_table.check_texts(), "the restored training data to be checked")
        await again.tasks.wait_idle()

    try:
        run(scenario())
    finally:
        run(again.tasks.aclose())
    assert page.images_area.paths() == [scenes / "images"] and page.masks_area.paths() == [scenes / "masks"]
    assert (page.settings.epochs.value(), page.settings.learning_rate.value()) == (7, 0.004)
    assert page.settings.output_path() != tmp_path / "models" / "kept.safetensors", "a free name"
    assert file_dialogs.last_folder() == scenes / "masks", "dialogs open where the user last was"
