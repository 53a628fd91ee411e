"""Work a crash interrupted: offered once at start-up in a banner above every page, resumed on Train."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QLabel

from engine.errors import JobCancelled
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store, run, submit
from engine.jobs.specs import TrainSpec
from engine.paths import app_home, jobs_db_path
from engine.progress import CancelToken, EpochEvent, NullReporter
from engine.synthetic import write_scene
from engine.training import TrainConfig, checkpoint_path_for
from modelai_desktop.interrupted import InterruptedBanner, find_interrupted
from modelai_desktop.main_window import MainWindow

pytestmark = pytest.mark.gui
TRAINING_TIMEOUT_S = 15.0


class CancelAfterFirstEpoch(NullReporter):
    def __init__(self, cancel: CancelToken) -> None:
        self._cancel = cancel

    def on_epoch(self, event: EpochEvent) -> None:
        self._cancel.cancel()


def dead_pid() -> int:
    """The id of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leave_running_with_dead_process(home: Path, job_id: int) -> None:
    """What a crash leaves behind: the job still ``running``, owned by a process that is gone."""
    with sqlite3.connect(jobs_db_path(home)) as connection:
        connection.execute(
            "UPDATE jobs SET status = ?, finished = NULL, error_message = NULL, pid = ? WHERE id = ?",
            (JobStatus.RUNNING.value, dead_pid(), job_id),
        )
    connection.close()


@pytest.fixture
def crashed_training(tmp_path: Path, isolated_home: Path) -> int:
    """A two-epoch training whose process 'died' after epoch 1, leaving its checkpoint; its job id."""
    home = app_home(isolated_home)
    for index in range(2):
        write_scene(tmp_path / "data", f"scene{index}", size=(128, 128), seed=20 + index)
    config = TrainConfig(
        task="segmentation",
        images=[tmp_path / "data" / "images"],
        masks=[tmp_path / "data" / "masks"],
        output=home / "models" / "crashed.safetensors",
        patch=64,
        batch_size=4,
        epochs=2,
        base_width=4,
        device="cpu",
        patches_per_epoch=8,
    )
    cancel = CancelToken()
    with open_store(home) as store:
        with pytest.raises(JobCancelled):
            run(store, TrainSpec(config), CancelAfterFirstEpoch(cancel), cancel)
        [job] = store.list_jobs()
    leave_running_with_dead_process(home, job.id)
    return job.id


def test_reopening_the_window_after_a_crash_offers_resume_and_resuming_finishes_the_training(
    crashed_training, isolated_home, settings, tmp_path, qtbot, run, until
):
    window = MainWindow(settings, tmp_path / "logs", isolated_home)
    qtbot.addWidget(window)
    page, banner = window.train_page, window.interrupted_banner
    saved: list[Path] = []
    page.model_saved.connect(saved.append)

    async def scenario():
        window.show()
        await window.start_background_reads()
        assert window.current_page_name() == "Data" and banner.isVisible(), "shown on the first page"
        text = " ".join(label.text() for label in banner.findChildren(QLabel))
        assert "1 job was interrupted" in text
        assert f"Job {crashed_training}, segmentation training: stopped after epoch 1 of 2" in text
        banner.resume_buttons[crashed_training].click()
        assert banner.isHidden() and window.current_page_name() == "Train"
        await until(page.is_running, "the resumed training to start")
        await until(lambda: saved, "the resumed training to save its model", TRAINING_TIMEOUT_S)
        await window.tasks.wait_idle()  # the Models page's list, re-read when the model was saved

    try:
        run(scenario())
    finally:
        window.jobs.stop_all(10_000)
        run(window.tasks.aclose())
    assert saved == [isolated_home / "models" / "crashed.safetensors"]
    assert page.run_view.loss_plot.series("train")[0].tolist() == [1, 2]
    with open_store(isolated_home) as store:
        assert store.get_job(crashed_training).status is JobStatus.INTERRUPTED
        resumed = store.list_jobs()[0]
        assert (resumed.parent_job_id, resumed.status) == (crashed_training, JobStatus.SUCCEEDED)
    assert find_interrupted(isolated_home) == [], "a resumed job is not offered again"


def test_jobs_that_cannot_resume_are_named_without_a_resume_button(crashed_training, isolated_home, qtbot):
    with open_store(isolated_home) as store:
        checkpoint = store.get_job(crashed_training).checkpoint_path
        prediction = store.create_job("predict", '{"model": "m.safetensors"}', status=JobStatus.RUNNING)
    checkpoint.unlink()
    leave_running_with_dead_process(isolated_home, prediction)

    jobs = find_interrupted(isolated_home)
    banner = InterruptedBanner()
    qtbot.addWidget(banner)
    banner.show_jobs(jobs)
    assert [(job.record.id, job.resumable) for job in jobs] == [
        (prediction, False),
        (crashed_training, False),
    ]
    assert banner.resume_buttons == {} and not banner.isHidden()
    assert jobs[0].describe() == f"Job {prediction}, predict: stopped before it finished"


def test_a_new_run_under_a_renamed_models_name_restarts_as_itself_after_a_crash(
    isolated_home, settings, tmp_path, qtbot, run, until
):
    """Issue 18, step by step: train under the default name, rename the model, start a longer run
    that gets the same default name, kill the app before its first checkpoint, restart, Resume. The
    old run's checkpoint stayed behind and the "resumed" job ended at once with its 1 epoch."""
    for index in range(2):
        write_scene(tmp_path / "data", f"scene{index}", size=(128, 128), seed=30 + index)
    images, masks = [tmp_path / "data" / "images"], [tmp_path / "data" / "masks"]
    models = isolated_home / "models"
    first = MainWindow(settings, tmp_path / "logs", isolated_home)
    qtbot.addWidget(first)
    page, saved = first.train_page, []
    page.model_saved.connect(saved.append)

    async def train_once():
        page.set_data("segmentation", images, masks)
        await until(lambda: not page.blocking_problem(), "the data check")
        tiny = TrainConfig("segmentation", images, page._config().output, masks, patch=64, batch_size=4)
        page.settings.show_config(replace(tiny, epochs=1, base_width=4, patches_per_epoch=8, device="cpu"))
        page.start_button.click()
        await until(lambda: saved, "the first training", TRAINING_TIMEOUT_S)
        await until(lambda: not page.blocking_problem(), "the page to be ready again")

    try:
        run(train_once())
        [model] = saved
        renamed = first.models_page.rename_model(model, "first try")
        assert (models / "first try.checkpoints" / "last.ckpt").is_file(), "the checkpoints moved along"
        assert not (models / f"{model.stem}.checkpoints").exists()
        run(page.check_data())  # the user drops the data again for the next run
        page.settings.epochs.setValue(3)
        config = page._config()
        assert config.output == model, "the new run takes the freed default name"
        with open_store(isolated_home) as store:
            killed = submit(store, TrainSpec(config))
            store.mark_running(killed, "cpu", {})
            store.set_checkpoint(killed, checkpoint_path_for(config))
    finally:
        run(first.tasks.aclose())
    leave_running_with_dead_process(isolated_home, killed)

    second = MainWindow(settings, tmp_path / "logs", isolated_home)
    qtbot.addWidget(second)
    banner, page, saved = second.interrupted_banner, second.train_page, []
    page.model_saved.connect(saved.append)

    async def restart_and_resume():
        second.show()
        second.show_page("models")
        await second.start_background_reads()
        assert banner.isVisible(), "the banner shows on the page the window opens on"
        button = banner.resume_buttons[killed]
        assert button.text() == "Start again"
        button.click()
        assert banner.isHidden() and second.current_page_name() == "Train"
        await until(lambda: saved, "the restarted training", TRAINING_TIMEOUT_S * 2)
        await second.tasks.wait_idle()  # the Models page's list, read when it was shown

    try:
        run(restart_and_resume())
    finally:
        second.jobs.stop_all(10_000)
        run(second.tasks.aclose())
    assert page.run_view.loss_plot.series("train")[0].tolist() == [1, 2, 3]
    with open_store(isolated_home) as store:
        restarted = store.list_jobs()[0]
        assert (restarted.parent_job_id, restarted.result["epochs_run"]) == (killed, 3)
    assert renamed.is_file() and saved == [model]
