"""The Jobs page on a real store: the list, a job's details, cancel through the store, rerun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QTextBrowser

from engine.errors import JobCancelled
from engine.jobs.records import EpochRecord, JobStatus
from engine.jobs.runner import open_store
from engine.jobs.specs import TrainSpec, spec_to_dict
from engine.progress import CancelToken, NullReporter
from engine.synthetic import write_scene
from engine.training import train
from modelai_desktop.widgets.job_details import STYLE, _epoch_table
from modelai_desktop.widgets.job_table import COLUMNS
from modelai_desktop.workers import run_spec_job
from tests.engine.runner_child import tiny_config, tiny_predict_spec, write_training_data

pytestmark = pytest.mark.gui
CRASH = "Traceback (most recent call last):\nZeroDivisionError: division by zero"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_training_data(tmp_path_factory.mktemp("data"))
    return train(tiny_config(data, tmp_path_factory.mktemp("model") / "tiny.safetensors")).model_path


@pytest.fixture
def history(model: Path, tmp_path: Path, isolated_home: Path) -> dict[str, int]:
    """A succeeded prediction, a failed job whose output was deleted, and a queued job."""
    scene = write_scene(tmp_path, "field", size=(64, 64), seed=1).image
    spec = tiny_predict_spec(model, scene, tmp_path / "out")
    succeeded = run_spec_job(spec, isolated_home, NullReporter(), CancelToken()).job_id
    spec_json = json.dumps(spec_to_dict(tiny_predict_spec(model, scene, tmp_path / "gone")))
    with open_store(isolated_home) as store:
        failed = store.create_job("predict", spec_json, status=JobStatus.RUNNING)
        lost = tmp_path / "gone" / "field_summary.json"
        lost.parent.mkdir()
        lost.write_text("{}")
        store.add_artifact(failed, "summary", lost)
        lost.unlink()
        store.mark_failed(failed, "internal error: ZeroDivisionError: division by zero", CRASH)
        queued = store.create_job("predict", spec_json)
    return {"succeeded": succeeded, "failed": failed, "queued": queued}


def cell(page, row: int, column: str) -> str:
    model = page.table.job_model
    return model.data(model.index(row, COLUMNS.index(column)))


def test_the_page_lists_jobs_and_shows_a_failed_job(window, run, until, history):
    page = window.jobs_page

    async def scenario() -> None:
        await page.reload()
        page.table.select_job(history["failed"])
        await until(lambda: "What went wrong" in page.details.toPlainText(), "the failed job's details")

    run(scenario())
    assert [cell(page, row, "ID") for row in range(3)] == [
        str(history[name]) for name in ("queued", "failed", "succeeded")
    ]
    assert [cell(page, row, "Status") for row in range(3)] == ["queued", "failed", "succeeded"]
    assert cell(page, 2, "Result").startswith("1 raster → ")
    assert cell(page, 1, "Result") == "internal error: ZeroDivisionError: division by zero"
    text = page.details.toPlainText()
    assert f"Job {history['failed']} · predict · failed" in text
    assert "ZeroDivisionError: division by zero" in text and "Traceback" in text
    assert "field_summary.json" in text and "missing" in text, "outputs are checked on disk"
    assert "options · tile\n32" in text and "{" not in text, "the settings it ran with, as a form"
    assert page.rerun_button.isEnabled() and not page.cancel_button.isEnabled()
    assert page.count_label.text() == "3 jobs"


def test_cancel_asks_the_store_for_a_job_of_another_process(window, qtbot, run, until, history):
    page = window.jobs_page

    async def scenario() -> None:
        await page.reload()
        page.table.select_job(history["queued"])
        await until(lambda: page.cancel_button.isEnabled(), "the queued job's details")
        qtbot.mouseClick(page.cancel_button, Qt.MouseButton.LeftButton)
        # The list is read before the selected job's details: wait for both.
        await until(
            lambda: cell(page, 0, "Status") == "cancelled" and not page.cancel_button.isEnabled(),
            "the cancelled status and details",
        )

    run(scenario())
    assert cell(page, 0, "Result") == "cancelled before it started"


def test_rerun_runs_the_same_settings_as_a_new_linked_job(window, run, until, history, isolated_home):
    page = window.jobs_page
    with open_store(isolated_home) as store:
        store.request_cancel(history["queued"])  # an older queued job would have the first turn

    async def scenario() -> None:
        await page.reload()
        page.table.select_job(history["succeeded"])
        await until(lambda: page.rerun_button.isEnabled(), "the job's details")
        worker = page.rerun(page.table.job_model.job_at(page.table.currentIndex().row()))
        await until(lambda: not worker.is_running() and not window.jobs.workers(), "the rerun to end")
        await page.reload()

    run(scenario())
    with open_store(isolated_home) as store:
        newest = store.list_jobs(limit=1)[0]
    assert newest.parent_job_id == history["succeeded"] and newest.status is JobStatus.SUCCEEDED
    assert page.table.selected_job_id() == newest.id, "the new job is selected"
    assert f"Run again from\njob {history['succeeded']}" in page.details.toPlainText()


def test_screenshot_of_the_jobs_page(tmp_path):
    out = tmp_path / "jobs.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "MODELAI_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "modelai_desktop", "--screenshot", str(out), "--page", "jobs"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert QImage(str(out)).width() > 0


def test_a_job_recorded_elsewhere_appears_while_the_page_is_shown(window, run, until, isolated_home):
    page = window.jobs_page
    window.show()
    window.show_page("Jobs")

    async def scenario() -> None:
        await until(lambda: page.count_label.text() == "none yet", "the first read")
        with open_store(isolated_home) as store:
            store.create_job("predict", json.dumps({"model": "m.safetensors"}))
        await until(lambda: page.count_label.text() == "1 job", "the timer's refresh", timeout=15)

    run(scenario())
    assert cell(page, 0, "Status") == "queued"


def test_a_damaged_job_store_is_explained_and_the_page_keeps_working(window, run, isolated_home):
    (isolated_home / "jobs.sqlite").write_bytes(b"these bytes are not a database " * 200)
    page = window.jobs_page
    run(page.reload())
    assert "is not a ModelAI job store" in page.banner.text()
    assert "move it away" in page.banner.text(), "the message says what to do"
    (isolated_home / "jobs.sqlite").unlink()
    run(page.reload())
    assert page.count_label.text() == "none yet"


class CancelAfterFirstEpoch(NullReporter):
    def __init__(self, cancel: CancelToken) -> None:
        self._cancel = cancel

    def on_epoch(self, event) -> None:
        self._cancel.cancel()


def test_a_cancelled_training_shows_its_curves_and_resumes_from_the_train_page(
    window, run, until, tmp_path, isolated_home
):
    data = write_training_data(tmp_path / "data")
    spec = TrainSpec(tiny_config(data, tmp_path / "models" / "resumable.safetensors", epochs=2))
    cancel = CancelToken()
    with pytest.raises(JobCancelled):
        run_spec_job(spec, isolated_home, CancelAfterFirstEpoch(cancel), cancel)
    with open_store(isolated_home) as store:
        [cancelled] = store.list_jobs()
    page = window.jobs_page

    async def scenario() -> None:
        await page.reload()
        page.table.select_job(cancelled.id)
        await until(lambda: page.curves.isVisibleTo(page), "the cancelled job's curves")
        assert page.curves.series("train")[0].tolist() == [1]
        assert page.resume_button.isVisibleTo(page)
        page.resume_button.click()
        assert window.current_page_name() == "Train"
        await until(lambda: (tmp_path / "models" / "resumable.safetensors").exists(), "the resumed model", 30)
        await until(lambda: not window.jobs.workers(), "the resumed job's worker to be released")
        await window.tasks.wait_idle()

    try:
        run(scenario())
    finally:
        window.jobs.stop_all(10_000)
    with open_store(isolated_home) as store:
        resumed = store.list_jobs()[0]
        assert (resumed.parent_job_id, resumed.status) == (cancelled.id, JobStatus.SUCCEEDED)
        assert [epoch.epoch for epoch in store.epochs(resumed.id)] == [1, 2]
    page.table.select_job(cancelled.id)
    run(page.reload())
    assert not page.resume_button.isVisibleTo(page), "no Resume for a job a later job already finished"
    assert f"Cannot resume: job {resumed.id} already continued it" in page.details.toPlainText()


def test_epoch_tables_never_break_a_header_or_a_number(qtbot):
    metrics = {"pixel_accuracy": 0.912345, "mean_iou": 0.5, "mean_f1": 0.6}
    epochs = [EpochRecord(1, 1, 0.123456, 0.234567, metrics, None, None)]
    view = QTextBrowser()
    qtbot.addWidget(view)
    view.resize(260, 200)
    view.setHtml(STYLE + _epoch_table(epochs))
    view.show()
    qtbot.waitUntil(lambda: view.horizontalScrollBar().maximum() > 0)  # scrolls sideways instead
    for text in ("pixel accuracy", "0.9123", "0.1235"):
        block = view.document().find(text).block()
        assert block.layout().lineCount() == 1, f"{text!r} is broken over lines"
