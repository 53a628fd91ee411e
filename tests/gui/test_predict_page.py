"""The Predict page on a real window: a real tiny model, real rasters, jobs recorded in a real store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

import engine.jobs.runner
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.progress import ProgressEvent
from engine.synthetic import CLASS_NAMES, write_scene
from engine.training import train
from modelai_desktop.widgets.progress_panel import ProgressPanel
from tests.engine.runner_child import tiny_config, write_training_data
from tests.rasters import write_raster

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation model of the synthetic classes, trained for one epoch (about 2 s)."""
    data = write_training_data(tmp_path_factory.mktemp("data"))
    config = tiny_config(data, tmp_path_factory.mktemp("model") / "tiny.safetensors")
    config.class_names = list(CLASS_NAMES)
    return train(config).model_path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene"), "field", size=(96, 96), seed=7).image


def prepare(page, options_tile: int = 64, overlap: int = 0) -> None:
    page.options.tile.setValue(options_tile)
    page.options.overlap.setValue(overlap)


async def load(window, model: Path, *rasters: Path) -> None:
    await window.data_page.load_paths(list(rasters))
    assert await window.predict_page.load_model(model)


def jobs_in_store(home: Path) -> list:
    with open_store(home) as store:
        return store.list_jobs()


def test_a_prediction_writes_outputs_records_a_job_and_draws_the_result(
    window, qtbot, run, until, model, scene, isolated_home
):
    page = window.predict_page
    window.show()
    window.show_page("Predict")

    async def scenario() -> tuple[QImage, QImage]:
        await load(window, model, scene)
        page.rasters.select([scene])
        prepare(page)
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        assert not page.run_button.isEnabled(), "one prediction at a time"
        await until(lambda: not page.legend.isHidden(), "the result's legend", timeout=30)
        with_result = page.view.graphics.grab().toImage()
        page.show_result.setChecked(False)
        await until(lambda: not page.view.overlay_item.isVisible(), "the overlay to hide")
        return with_result, page.view.graphics.grab().toImage()

    with_result, without = run(scenario())
    outputs = sorted(path.name for path in page.last_output_dir.iterdir())
    assert outputs == ["field_classes.qml", "field_classes.tif", "field_summary.json"]
    assert page.last_output_dir.parent == isolated_home / "outputs"
    (job,) = jobs_in_store(isolated_home)
    assert job.status is JobStatus.SUCCEEDED and job.kind == "predict"
    assert page.progress.status_label.text().startswith("Done in") and page.run_button.isEnabled()
    overlay = page.view.overlay_item.image
    assert overlay.shape[:2] == page.view.preview.shape and overlay[..., 3].any()
    drawn = np.frombuffer(with_result.constBits(), np.uint8).astype(int)
    bare = np.frombuffer(without.constBits(), np.uint8).astype(int)
    assert np.abs(drawn - bare).mean() > 5, "the overlay changes the pixels on screen"
    legend = " ".join(page.legend.texts())
    assert all(name in legend for name in CLASS_NAMES) and "%" in legend
    units = {unit for unit in ("m²", "ha", "km²") if f" {unit}" in legend}
    assert len(units) == 1, f"one area unit in the legend, not {units}"
    assert page.legend.title.text() == "Classes of field.tif by tiny", "the legend names the model"
    readout = page.view.describe_position(40.5, 40.5)
    assert any(f"Result: {name}" in readout for name in CLASS_NAMES), readout
    assert page.output_edit.text() == str(page.last_output_dir), "the folder shown is the one used"


def test_the_output_folder_shown_is_the_one_each_run_writes_to(window, qtbot, run, until, model, scene):
    page = window.predict_page
    used: list[str] = []

    async def predict_once() -> None:
        shown_before = page.output_edit.text()
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        used.append(page.worker.spec.output_dir)
        assert page.output_edit.text() == str(used[-1]), "the field shows the folder used while it runs"
        if shown_before != str(used[-1]):
            assert Path(shown_before).exists(), "a new folder is chosen only when the shown one is taken"
        await until(lambda: page.worker is None, "the prediction to end", timeout=30)
        assert page.output_edit.text() == str(page.last_output_dir) == str(used[-1])

    async def scenario() -> None:
        await load(window, model, scene)
        page.rasters.select([scene])
        prepare(page)
        await predict_once()
        await predict_once()

    run(scenario())
    assert used[0] != used[1], "the second run does not refuse the first run's folder"


def test_cancel_stops_the_job_and_leaves_no_output(window, qtbot, run, until, model, tmp_path, isolated_home):
    large = write_scene(tmp_path, "large", size=(768, 768), seed=3).image
    page = window.predict_page

    async def scenario() -> None:
        await load(window, model, large)
        page.rasters.select([large])
        prepare(page, overlap=32)
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.progress.bar.value() > 0, "the first tiles", timeout=30)
        qtbot.mouseClick(page.progress.cancel_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.worker is None, "the job to stop", timeout=30)

    run(scenario())
    assert page.progress.status_label.text() == "Cancelled; no partial output was kept."
    (job,) = jobs_in_store(isolated_home)
    assert job.status is JobStatus.CANCELLED
    output_dir = Path(job.spec["output_dir"])
    assert not output_dir.exists() or not any(output_dir.iterdir())
    assert page.legend.isHidden() and page.view.overlay_item.image is None


def test_a_band_mismatch_is_explained_and_the_window_keeps_working(
    window, qtbot, run, until, model, scene, tmp_path, isolated_home
):
    rgb = write_raster(tmp_path / "rgb.tif", np.full((3, 64, 64), 100, dtype=np.uint16))
    page = window.predict_page

    async def scenario() -> None:
        await load(window, model, rgb, scene)
        page.rasters.select([rgb])
        prepare(page)
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.banner.text(), "the error message")
        await until(lambda: page.worker is None, "the failed job to end")
        page.rasters.select([scene])
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        await until(lambda: not page.legend.isHidden(), "the second prediction's result", timeout=30)

    run(scenario())
    message = page.banner.label.text()
    assert "expects 5 band(s)" in message and "has 3 band(s)" in message, message
    assert "Use a raster from the same sensor" in message, "the message says what to do"
    assert [job.status for job in jobs_in_store(isolated_home)] == [JobStatus.SUCCEEDED], (
        "a refused spec records no job"
    )


def test_an_internal_error_is_reported_and_the_window_keeps_working(
    window, qtbot, run, until, model, scene, isolated_home, monkeypatch
):
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(engine.jobs.runner, "predict_many", broken)
    page = window.predict_page

    async def scenario() -> None:
        await load(window, model, scene)
        page.rasters.select([scene])
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.worker is None, "the job to fail")
        await window.data_page.load_paths([scene.parent])

    run(scenario())
    assert "internal error (ZeroDivisionError: a bug)" in page.banner.text()
    assert "Open Log Folder" in page.banner.text()
    assert page.run_button.isEnabled() and not page.progress.running
    (job,) = jobs_in_store(isolated_home)
    assert job.status is JobStatus.FAILED and "ZeroDivisionError" in job.error_detail


def test_a_dropped_model_goes_to_the_predict_page_and_a_bad_one_is_named(window, run, until, model, tmp_path):
    page = window.predict_page
    not_a_model = tmp_path / "notes.safetensors"
    not_a_model.write_text("hello")

    async def scenario() -> None:
        window.open_paths([not_a_model])
        await until(lambda: page.banner.text(), "the refusal")
        window.open_paths([model])
        await until(lambda: page.model_path == model, "the model")

    run(scenario())
    assert window.current_page_name() == "Predict"
    assert "Segmentation" in page.model_label.text() and "road" in page.model_label.text()
    assert page.banner.text() == "", "a usable model clears the earlier message"


def test_screenshot_of_the_predict_page_with_a_model_and_a_raster(tmp_path, model, scene):
    out = tmp_path / "predict.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MODELAI_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "modelai_desktop", "--screenshot", str(out), "--page", "predict"]
    result = subprocess.run(
        [*command, str(scene), str(model)], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert QImage(str(out)).width() > 0


def test_the_progress_panel_shows_tiles_rate_and_time_left(qtbot):
    panel = ProgressPanel()
    qtbot.addWidget(panel)
    panel.start("Predicting 1 raster…")
    event = ProgressEvent("predict", 12, 81, rate=3.456, rate_unit="MPix/s", eta_s=3725, label="a.tif")
    panel.show_progress(event)
    assert panel.status_label.text() == "a.tif: tile 12 of 81"
    assert (panel.rate_label.text(), panel.eta_label.text()) == ("3.46 MPix/s", "1:02:05 left")
    assert panel.bar.format() == "15%"
    panel.show_progress(ProgressEvent("train", 5, 40, epoch=2, epochs=10, loss=0.12345))
    assert panel.status_label.text() == "Epoch 2/10: training batch 5 of 40, loss 0.1235"
    panel.finish("Done in 0:12: job 3.")
    assert not panel.running and panel.cancel_button.isHidden()


def test_the_model_just_trained_is_chosen_on_the_predict_page(window, run, until, model):
    window.train_page.model_saved.emit(model)  # as a training that ends does
    run(until(lambda: window.predict_page.model_path == model, "the new model on the Predict page"))
    assert model.name in window.predict_page.model_label.text()


def test_the_banner_of_what_is_missing_goes_once_it_is_given(window, run, model, scene):
    page = window.predict_page
    run(load(window, model, scene))
    page.rasters.select([])
    page.start_prediction()
    assert page.banner.text().startswith("To predict, select at least one raster")
    page.rasters.select([scene])
    assert page.banner.text() == "", "the fixed problem's banner does not stay"
