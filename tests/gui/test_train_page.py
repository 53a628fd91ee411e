"""The Train page: data checks before anything runs, a real tiny training, Stop and Resume, the queue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QLabel, QScrollArea

from engine.datasets import IGNORE_INDEX
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.paths import app_home
from engine.progress import ProgressEvent
from engine.synthetic import write_scene
from modelai_desktop.pages.models_page import ModelsPage
from modelai_desktop.pages.train_page import TrainPage
from modelai_desktop.widgets.loss_plot import EpochPoint, LossPlot
from modelai_desktop.widgets.sample_view import UNLABELLED_COLOR, SampleView
from modelai_desktop.widgets.training_run_view import TrainingRunView
from modelai_desktop.workers import JobRegistry
from tests.rasters import write_raster

pytestmark = pytest.mark.gui
TRAINING_TIMEOUT_S = 15.0
JOB_STOP_MS = 10_000


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 128-pixel synthetic scenes: ``images/`` and ``masks/``."""
    folder = tmp_path_factory.mktemp("scenes")
    for index in range(2):
        write_scene(folder, f"scene{index}", size=(128, 128), seed=10 + index)
    return folder


@pytest.fixture
def home(isolated_home: Path) -> Path:
    return app_home(isolated_home)


@pytest.fixture
def page(qtbot, tasks, home):
    jobs = JobRegistry()
    train_page = TrainPage(tasks, home, jobs)
    qtbot.addWidget(train_page)
    yield train_page
    assert jobs.stop_all(JOB_STOP_MS)


def use_tiny_settings(page: TrainPage, epochs: int, patches: int = 8) -> None:
    """A 4-wide U-Net on 64-pixel patches, a few batches per epoch, on the CPU."""
    form = page.settings
    form.patch.setValue(64)
    form.batch_size.setValue(4)
    form.epochs.setValue(epochs)
    form.base_width.setValue(4)
    form.patches_per_epoch.setValue(patches)
    assert form.set_device("cpu")


def test_a_training_started_from_the_page_plots_every_epoch_and_its_model_is_listed(
    page, scenes, home, tasks, run, until, qtbot
):
    saved: list[Path] = []
    page.model_saved.connect(saved.append)
    page.set_data("segmentation", [scenes / "images"], [scenes / "masks"])
    use_tiny_settings(page, epochs=2)

    async def scenario():
        await until(page.start_button.isEnabled, "Start to be enabled")
        assert "Each epoch: 8 patches in 2 batches" in page.estimate_label.text()
        page.start_button.click()
        assert page.is_running() and not page.start_button.isEnabled()
        await until(lambda: saved, "the model to be saved", TRAINING_TIMEOUT_S)
        await until(lambda: page.settings.output_path() != saved[0], "a new default model name")

    run(scenario())
    assert page.pairing_table.check_texts() == ["✔ ready", "✔ ready"]
    epochs, train_losses = page.run_view.loss_plot.series("train")
    assert epochs.tolist() == [1, 2] and np.isfinite(train_losses).all()
    assert page.run_view.loss_plot.series("validation")[0].tolist() == [1, 2]
    assert page.run_view.loss_plot.series("mean_iou")[0].tolist() == [1, 2]
    assert any(name.startswith("iou/") for name in page.run_view.loss_plot.metric_names())
    batch_x, _ = page.run_view.loss_plot.series("batch")
    assert batch_x.size >= 2 and batch_x.max() <= 2
    assert not page.run_view.sample_view.shown_image(2).isNull()
    assert "Epoch 2 of 2" in page.run_view.metrics_label.text()
    assert "per epoch (measured)" in page.run_view.estimate_label.text()
    assert "Last run: about" in page.estimate_label.text()
    [model] = saved
    assert model == home / "models" / "segmentation-images.safetensors" and model.is_file()
    with open_store(home) as store:
        [job] = store.list_jobs()
        assert job.status is JobStatus.SUCCEEDED
        stored = [(epoch.epoch, epoch.train_loss) for epoch in store.epochs(job.id)]
    assert stored == list(zip([1, 2], train_losses.tolist(), strict=True))
    assert f"Job {job.id} succeeded" in page.run_view.job_label.text()
    assert page.settings.output_path() == home / "models" / "segmentation-images-2.safetensors"

    models = ModelsPage(tasks, home)
    qtbot.addWidget(models)
    run(models.reload())
    assert [entry.path for entry in models.entries()] == [model]


def test_stop_keeps_a_checkpoint_and_resume_continues_the_epoch_count(page, scenes, home, run, until):
    messages: list[str] = []
    page.status_message.connect(messages.append)
    page.set_data("segmentation", [scenes / "images"], [scenes / "masks"])
    use_tiny_settings(page, epochs=4, patches=16)

    async def scenario():
        await until(page.start_button.isEnabled, "Start to be enabled")
        page.start_button.click()
        in_epoch_2 = lambda: page.run_view.loss_plot.series("batch")[0].max(initial=0) > 1  # noqa: E731
        await until(in_epoch_2, "epoch 2 to start", TRAINING_TIMEOUT_S)
        page.run_view.progress_panel.cancel_button.click()
        await until(lambda: not page.is_running(), "the job to stop", TRAINING_TIMEOUT_S)
        assert not page.resume_button.isHidden() and page.resume_button.isEnabled()
        with open_store(home) as store:
            [stopped] = store.list_jobs()
            kept = [epoch.epoch for epoch in store.epochs(stopped.id)]
        assert stopped.status is JobStatus.CANCELLED and stopped.checkpoint_path.is_file()
        assert f"Job {stopped.id} cancelled" in page.run_view.job_label.text()
        page.resume_button.click()
        await until(page.is_running, "the resumed job to start")
        await until(lambda: not page.is_running(), "the resumed job to end", TRAINING_TIMEOUT_S)
        return stopped, kept

    stopped, kept = run(scenario())
    assert kept and kept == list(range(1, len(kept) + 1)) and len(kept) < 4
    assert any(f"after epoch {len(kept)} of 4" in message for message in messages), messages
    assert page.run_view.loss_plot.series("train")[0].tolist() == [1, 2, 3, 4]
    with open_store(home) as store:
        resumed = store.list_jobs()[0]
        assert (resumed.parent_job_id, resumed.status) == (stopped.id, JobStatus.SUCCEEDED)
        assert resumed.result["epochs_run"] == 4
    assert page.resume_button.isHidden()
    assert any("Press Resume" in message for message in messages), "the window's button, not a flag"
    assert not any("--resume" in message for message in messages), messages
    output = page.settings.output_path()
    assert output != Path(resumed.result["model"]) and not output.exists(), "a free name after a resume"
    assert page.start_button.isEnabled(), page.readiness_label.text()


def test_save_model_as_moves_on_to_a_free_name_but_keeps_a_name_the_user_typed(
    page, scenes, home, run, until
):
    page.set_data("segmentation", [scenes / "images"], [scenes / "masks"])

    async def scenario():
        await until(page.start_button.isEnabled, "Start to be enabled")
        taken = page.settings.output_path()
        taken.parent.mkdir(parents=True, exist_ok=True)
        taken.write_bytes(b"another run saved this name meanwhile")
        page.settings.epochs.setValue(page.settings.epochs.value() + 1)
        assert page.settings.output_path() == taken.with_name("segmentation-images-2.safetensors")
        assert page.start_button.isEnabled()
        page.settings.output.clear()
        page.settings.output.insert(str(taken))  # as typed: the user's own name is never replaced
        assert page.settings.output_path() == taken and not page.start_button.isEnabled()
        page.start_training()
        assert "already exists" in page.banner.text()
        page.settings.output.clear()
        page.settings.output.insert(str(taken.with_name("mine.safetensors")))
        assert page.start_button.isEnabled() and page.banner.text() == "", "the fixed problem's banner goes"

    run(scenario())


def test_a_mask_of_another_size_is_flagged_and_start_stays_disabled(page, tmp_path, run):
    good = write_scene(tmp_path, "good", size=(128, 128), seed=1)
    write_scene(tmp_path, "odd", size=(128, 128), seed=2)
    write_scene(tmp_path / "small", "odd", size=(96, 96), seed=2).mask.replace(tmp_path / "masks" / "odd.tif")
    single = np.zeros((1, 128, 128), dtype=np.uint8)
    write_raster(tmp_path / "images" / "plain.tif", np.ones((5, 128, 128), dtype=np.uint16))
    write_raster(tmp_path / "masks" / "plain.tif", single)

    page.set_data("segmentation", [tmp_path / "images"], [tmp_path / "masks"])
    run(page.check_data())
    rows = {row.image.name: row for row in page.pairing_table.rows()}
    assert rows["good.tif"].mask == good.mask and not rows["good.tif"].problem
    assert "size 96×96 instead of 128×128" in rows["odd.tif"].problem
    assert "single class" in rows["plain.tif"].warning and not rows["plain.tif"].problem
    texts = page.pairing_table.check_texts()
    assert texts[0] == "✔ ready" and texts[1].startswith("✖") and texts[2].startswith("⚠")
    assert not page.start_button.isEnabled()
    assert "does not match image" in page.readiness_label.text()

    (tmp_path / "masks" / "odd.tif").unlink()
    run(page.check_data())
    assert "no mask found" in page.pairing_table.rows()[1].problem
    assert not page.start_button.isEnabled()


def test_the_network_width_is_automatic_until_the_user_sets_one(page, tmp_path):
    width = page.settings.base_width
    assert width.text() == "Auto"
    page.settings.output.setText(str(tmp_path / "model.safetensors"))
    assert page.settings.make_config("segmentation", [tmp_path], [tmp_path]).network_width == 16
    assert page.settings.make_config("anomaly", [tmp_path], None).network_width == 32
    width.setValue(24)
    assert page.settings.make_config("anomaly", [tmp_path], None).base_width == 24


def test_the_validation_side_chosen_is_the_strip_the_estimate_names_and_the_run_holds_out(
    page, tmp_path, run
):
    write_scene(tmp_path, "wide", size=(160, 256), seed=3)
    page.set_data("segmentation", [tmp_path / "images"], [tmp_path / "masks"])
    run(page.check_data())
    page.settings.output.setText(str(tmp_path / "model.safetensors"))
    assert "validation: the right 51 columns of wide.tif" in page.estimate_label.text()

    page.settings.val_side.setCurrentIndex(page.settings.val_side.findData("top"))
    assert "validation: the top 32 rows of wide.tif" in page.estimate_label.text()
    config = page.settings.make_config("segmentation", [tmp_path / "images"], [tmp_path / "masks"])
    assert config.val_side == "top"

    page.settings.val_side.setCurrentIndex(0)
    page.settings.show_config(config)
    assert page.settings.val_side.currentData() == "top"


def test_anomaly_training_needs_no_masks(page, scenes, run):
    page.set_data("anomaly", [scenes / "images"])
    report = run(page.check_data())
    assert report.usable and page.masks_area.isHidden()
    assert page.pairing_table.check_texts() == ["✔ ready", "✔ ready"]
    assert [row.mask for row in report.rows] == [None, None]
    assert page.start_button.isEnabled()
    page.settings.bands.setText("1,9")
    assert not page.start_button.isEnabled() and "band(s) 9 do not exist" in page.readiness_label.text()


def test_a_job_started_while_another_runs_waits_in_the_queue_and_says_so(page, scenes, home, run, until):
    with open_store(home) as store:
        other = store.create_job("predict", '{"model": "elsewhere"}', status=JobStatus.RUNNING)
    page.set_data("segmentation", [scenes / "images"], [scenes / "masks"])
    use_tiny_settings(page, epochs=1)

    async def scenario():
        await until(page.start_button.isEnabled, "Start to be enabled")
        page.start_button.click()
        await until(lambda: "queued" in page.run_view.job_label.text(), "the queued job to say so")
        assert f"Waiting for job {other}" in page.run_view.progress_panel.status_label.text()
        with open_store(home) as store:
            store.mark_succeeded(other, {})
        await until(lambda: not page.is_running(), "the queued job to run and end", TRAINING_TIMEOUT_S)

    run(scenario())
    assert "succeeded" in page.run_view.job_label.text()


def test_files_dropped_on_the_drop_areas_are_paired(page, scenes, run):
    for area, folder in ((page.images_area, "images"), (page.masks_area, "masks")):
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(scenes / folder))])
        point = QPointF(area.width() / 2, area.height() / 2)
        buttons, modifiers = Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
        enter = QDragEnterEvent(point.toPoint(), Qt.DropAction.CopyAction, mime, buttons, modifiers)
        QApplication.sendEvent(area, enter)
        assert enter.isAccepted()
        QApplication.sendEvent(area, QDropEvent(point, Qt.DropAction.CopyAction, mime, buttons, modifiers))
    assert page.images_area.paths() == [scenes / "images"]
    report = run(page.check_data())
    assert report.usable and len(report.rows) == 2


def shows_all_its_text(label: QLabel) -> bool:
    """A word-wrapped label is as tall as its text needs at its width: nothing is cut off."""
    return label.isVisible() and label.heightForWidth(label.width()) <= label.height()


@pytest.mark.parametrize("size", [(1280, 820), (1024, 700)])
def test_the_drop_areas_show_their_whole_hint_and_fit_the_column_at_the_default_and_smallest_size(
    window, run, until, size
):
    window.resize(*size)
    window.show()
    window.show_page("Train")
    page = window.train_page
    hints = [page.images_area.summary, page.masks_area.summary]
    run(until(lambda: all(map(shows_all_its_text, hints)), f"the whole hints at {size}", timeout=3.0))
    column = next(area for area in page.findChildren(QScrollArea) if area.isAncestorOf(page.masks_area))
    cut = column.widget().width() - column.viewport().width()
    assert cut <= 0, f"at {size} the setup column is cut {cut} px on the right (no sideways scroll)"


def test_long_file_names_do_not_widen_the_drop_areas(page, tmp_path, run):
    areas = [page.images_area, page.masks_area]
    narrowest = [area.minimumSizeHint().width() for area in areas]
    long_name = "a_survey_scene_with_a_very_long_name_from_the_field_campaign_2024_tile_0001"
    page.set_data("segmentation", [tmp_path / f"{long_name}.tif"], [tmp_path / f"{long_name}_mask.tif"])
    run(page.check_data())
    assert page.masks_area.summary.text().startswith(long_name)
    assert [area.minimumSizeHint().width() for area in areas] == narrowest, "names are cut, not the column"
    for area in areas:
        assert str(tmp_path) in area.summary.toolTip(), "the tooltip names the file in full"


def test_an_anomaly_run_plots_its_error_and_threshold_and_shows_the_error_map(qtbot):
    plot, view = LossPlot(), SampleView()
    qtbot.addWidget(plot)
    qtbot.addWidget(view)
    for epoch, (error, threshold) in enumerate([(0.9, 1.4), (0.5, 0.8)], start=1):
        metrics = {"reconstruction_error": error, "threshold": threshold}
        plot.add_epoch(EpochPoint(epoch, train_loss=error, val_loss=error, metrics=metrics))
    assert plot.metric_names() == ["reconstruction_error", "threshold"]
    assert plot.series("threshold")[1].tolist() == [1.4, 0.8]
    assert "threshold" in plot.metric_plot.titleLabel.text
    errors = np.zeros((32, 32), dtype=np.float32)
    errors[8:12, 8:12] = 5.0
    rgb = np.full((32, 32, 3), 120, dtype=np.uint8)
    view.show_sample({"image": rgb, "reconstruction": rgb, "prediction": errors}, epoch=2)
    assert [title.text() for title in view.titles] == ["Input", "Reconstruction", "Error"]
    error_map = view.shown_image(2)
    hot, cold = error_map.pixelColor(40, 40), error_map.pixelColor(100, 100)
    assert hot.lightness() > cold.lightness(), "high errors are drawn brighter"


def test_the_run_shows_one_whole_run_progress_and_one_time_left_until_it_ends(qtbot):
    """Issue 18: 'Epoch 12/30' sat beside a 50 % bar (the epoch's), two 'left' times showed at once,
    and '0:47 left' stayed after a cancel."""
    view = TrainingRunView()
    qtbot.addWidget(view)
    view.show()
    view.start("Starting segmentation training…", 30, [])
    view.show_progress(ProgressEvent("train", 10, 10, epoch=1, epochs=30, loss=0.5, rate=5.0, eta_s=0.0))
    view.show_progress(ProgressEvent("validate", 2, 2, epoch=1, epochs=30, rate=9.0, eta_s=0.0))
    view.show_progress(ProgressEvent("train", 5, 10, epoch=12, epochs=30, loss=0.3, rate=5.0, eta_s=1.0))

    def times_left() -> list[str]:
        return [label.text() for label in view.findChildren(QLabel) if "left" in label.text()]

    assert view.progress_panel.bar.format() == "38%", "11 epochs and 5/12 of the 12th of 30"
    assert len(times_left()) == 1 and view.progress_panel.eta_label.text().endswith(" left")
    view.finish("Job 1 cancelled.", "Cancelled")
    assert times_left() == []


def test_the_sample_draws_unlabelled_pixels_as_unlabelled_and_names_the_classes(qtbot):
    view = SampleView()
    qtbot.addWidget(view)
    view.set_classes(["field", "road"], ["#00ff00", "#ff0000"])
    target = np.zeros((32, 32), dtype=np.uint8)
    target[:, 16:] = IGNORE_INDEX  # the right half has no label
    prediction = np.ones((32, 32), dtype=np.uint8)  # "road" everywhere, labelled or not
    rgb = np.full((32, 32, 3), 120, dtype=np.uint8)
    view.show_sample({"image": rgb, "target": target, "prediction": prediction}, epoch=1)
    predicted = view.shown_image(2)
    width = predicted.width()
    assert predicted.pixelColor(width // 4, width // 2) == QColor("#ff0000")
    assert predicted.pixelColor(3 * width // 4, width // 2) == QColor(UNLABELLED_COLOR), "no class colour"
    caption = view.caption.text()
    assert "field" in caption and "road" in caption and "unlabelled" in caption and "class 0" not in caption


def test_legends_sit_below_the_curves_in_as_many_columns_as_fit(qtbot):
    plot = LossPlot()
    qtbot.addWidget(plot)
    plot.resize(460, 420)
    plot.show()
    names = ["field", "road", "building", "water", "forest", "bare soil"]
    metrics = {"mean_iou": 0.5, **{f"iou/{name}": 0.5 for name in names}}
    plot.add_epoch(EpochPoint(1, train_loss=1.0, val_loss=1.1, metrics=metrics))
    qtbot.waitUntil(lambda: plot.loss_plot.legend.columnCount == 3)

    def below_and_inside(area) -> bool:
        legend = area.legend.sceneBoundingRect()
        below = legend.top() >= area.vb.sceneBoundingRect().bottom()  # it covers no curve
        return below and legend.right() <= area.scene().sceneRect().right() + 1  # nothing cut off

    for area in (plot.loss_plot, plot.metric_plot):
        qtbot.waitUntil(lambda area=area: below_and_inside(area))
