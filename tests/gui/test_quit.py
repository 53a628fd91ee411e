"""Quitting while a job runs: the window asks, lets the job stop, records it cancelled, then closes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtWidgets import QMessageBox

from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.synthetic import write_scene
from engine.training import TrainConfig

pytestmark = pytest.mark.gui


@pytest.fixture(autouse=True)
def app_outlives_its_window(qapp):
    """As in ``modelai_desktop.app.main``: the session, not Qt, ends when the window closes."""
    before = qapp.quitOnLastWindowClosed()
    qapp.setQuitOnLastWindowClosed(False)
    yield
    qapp.setQuitOnLastWindowClosed(before)


def start_a_long_training(window, tmp_path: Path, until):
    """Starts a training from the Train page, as a user would, that runs far longer than the test."""

    async def start() -> None:
        for index in range(2):
            write_scene(tmp_path / "data", f"scene{index}", size=(128, 128), seed=40 + index)
        page = window.train_page
        page.set_data("segmentation", [tmp_path / "data" / "images"], [tmp_path / "data" / "masks"])
        await until(lambda: not page.blocking_problem(), "the data check")
        config = TrainConfig("segmentation", [], page._config().output, patch=64, batch_size=4, base_width=4)
        page.settings.show_config(replace(config, epochs=500, patches_per_epoch=8, device="cpu"))
        page.start_button.click()
        await until(lambda: page.run_view.loss_plot.series("train")[0].size, "the first epoch", 30)

    return start()


def test_quit_during_training_asks_then_ends_the_job_cancelled_before_closing(
    window, tmp_path, isolated_home, run, until
):
    """Issue 18: Ctrl+Q quit at once, cancelled silently and logged 'BackgroundTasks is closed'.
    Issue 16: the window exited with a job thread still running."""
    closed_with: list[list[bool]] = []
    window.closed.connect(lambda: closed_with.append([w.is_running() for w in window.jobs.workers()]))
    window.show()
    run(start_a_long_training(window, tmp_path, until))

    async def quit_and_keep_running() -> None:
        window.quit_action.trigger()
        await until(lambda: window.quit_box is not None and window.quit_box.isVisible(), "the question")
        window.quit_box.button(QMessageBox.StandardButton.No).click()

    run(quit_and_keep_running())
    assert window.isVisible() and window.train_page.is_running() and not closed_with

    async def quit_for_real() -> None:
        window.quit_action.trigger()
        await until(lambda: window.quit_box.isVisible(), "the question again")
        window.quit_box.button(QMessageBox.StandardButton.Yes).click()
        assert window.statusBar().currentMessage().startswith("Finishing: stopping job")
        assert not window.centralWidget().isEnabled()
        await until(lambda: closed_with, "the window to close once the job stopped", 30)

    run(quit_for_real())
    assert closed_with == [[]], "the window closed only after every job thread had ended"
    with open_store(isolated_home) as store:
        [job] = store.list_jobs()
    assert job.status is JobStatus.CANCELLED and job.finished is not None
