"""The job worker: the engine's runner on a QThread, events as signals, cancel, errors as `failed`."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

import engine.jobs.runner
from engine.jobs.records import JobStatus
from engine.jobs.runner import JobOutcome, open_store
from engine.jobs.specs import PredictSpec
from engine.progress import CancelToken, ProgressEvent, RecordingReporter
from engine.synthetic import write_scene
from engine.training import train
from modelai_desktop.control_names import in_window_terms
from modelai_desktop.workers import JobRegistry, JobWorker, ThrottledSignals, run_spec_job
from tests.engine.runner_child import tiny_config, tiny_predict_spec, write_training_data
from tests.rasters import write_raster

pytestmark = pytest.mark.gui
JOB_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation model trained for one epoch on two synthetic scenes (about 2 s)."""
    data = write_training_data(tmp_path_factory.mktemp("data"))
    return train(tiny_config(data, tmp_path_factory.mktemp("model") / "tiny.safetensors")).model_path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene"), "field", size=(96, 96), seed=7).image


@pytest.fixture(scope="module")
def large_scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """256 tiles of 32 pixels: long enough to cancel in the middle."""
    return write_scene(tmp_path_factory.mktemp("large"), "large", size=(512, 512), seed=8).image


def start_and_wait(qtbot, worker: JobWorker, signal_name: str) -> list:
    """Starts the worker and returns the arguments of the final signal, which must be ``signal_name``."""
    endings: list[tuple[str, tuple]] = []
    for name in ("finished", "failed", "cancelled"):
        getattr(worker, name).connect(lambda *args, name=name: endings.append((name, args)))
    with qtbot.waitSignal(getattr(worker, signal_name), timeout=JOB_TIMEOUT_MS):
        worker.start()
    assert [name for name, _ in endings] == [signal_name], endings
    assert not worker.is_running(), "the final signal comes once the thread has ended"
    return list(endings[0][1])


def test_run_spec_job_records_the_job_without_an_event_loop(model, scene, isolated_home, tmp_path):
    reporter, submitted = RecordingReporter(), []
    spec = tiny_predict_spec(model, scene, tmp_path / "out")
    outcome = run_spec_job(spec, isolated_home, reporter, CancelToken(), on_submitted=submitted.append)
    assert submitted == [outcome.job_id]
    assert (tmp_path / "out" / "field_classes.tif").is_file()
    assert reporter.progress[-1].done == reporter.progress[-1].total
    with open_store(isolated_home) as store:
        job = store.get_job(outcome.job_id)
    assert job.status is JobStatus.SUCCEEDED and job.kind == "predict"


def test_progress_is_throttled_but_keeps_steps_and_the_end(qtbot):
    worker = JobWorker(PredictSpec(Path("m"), [], Path("o")), Path("home"))
    now = [0.0]
    reporter = ThrottledSignals(worker, clock=lambda: now[0])
    sent: list[ProgressEvent] = []
    worker.progress.connect(sent.append)
    for done in range(1, 10_001):
        now[0] += 0.0001
        reporter.on_progress(ProgressEvent("predict", done, 10_000, label="a.tif"))
    reporter.on_progress(ProgressEvent("predict", 1, 5, label="b.tif"))
    assert 5 <= len(sent) <= 12, "about ten a second over one second of events"
    assert sent[0].done == 1 and sent[-2].done == 10_000, "the first and the last step always go out"
    assert sent[-1].label == "b.tif", "a new file restarts the bar at once"


def test_worker_runs_a_prediction_and_reports_it(qtbot, model, scene, isolated_home, tmp_path):
    worker = JobWorker(tiny_predict_spec(model, scene, tmp_path / "out"), isolated_home)
    started, progress = [], []
    worker.started.connect(started.append)
    worker.progress.connect(progress.append)
    (outcome,) = start_and_wait(qtbot, worker, "finished")
    assert isinstance(outcome, JobOutcome)
    assert started == [outcome.job_id] == [worker.job_id]
    assert progress and progress[-1].done == progress[-1].total
    assert outcome.predictions[0].outputs["classes"].is_file()


def test_cancel_stops_before_the_end_and_leaves_no_output(qtbot, model, large_scene, isolated_home, tmp_path):
    """Cancel from the first progress report ends the job long before its 256 tiles are done.
    No bound in seconds: on a loaded machine the queued signal arrives late, not the engine."""
    out = tmp_path / "out"
    worker = JobWorker(tiny_predict_spec(model, large_scene, out), isolated_home)
    events: list[ProgressEvent] = []

    def cancel_once(event: ProgressEvent) -> None:
        events.append(event)
        if len(events) == 1:
            worker.cancel()

    worker.progress.connect(cancel_once)
    (message,) = start_and_wait(qtbot, worker, "cancelled")
    assert events[-1].done < events[-1].total, "the job ran to its end despite Cancel"
    assert "cancelled" in message
    assert not any(out.iterdir()), "no partial output stays behind"
    with open_store(isolated_home) as store:
        assert store.get_job(worker.job_id).status is JobStatus.CANCELLED


def test_an_internal_error_becomes_failed_with_its_traceback(
    qtbot, model, scene, isolated_home, tmp_path, monkeypatch
):
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("a bug in the engine")

    monkeypatch.setattr(engine.jobs.runner, "predict_many", broken)
    worker = JobWorker(tiny_predict_spec(model, scene, tmp_path / "out"), isolated_home)
    message, detail = start_and_wait(qtbot, worker, "failed")
    assert "internal error (ZeroDivisionError: a bug in the engine)" in message
    assert f"failed job {worker.job_id}" in message and "log" in message
    assert "Traceback" in detail and "broken" in detail
    with open_store(isolated_home) as store:
        job = store.get_job(worker.job_id)
    assert job.status is JobStatus.FAILED and "ZeroDivisionError" in job.error_detail


def test_a_spec_that_cannot_run_fails_before_any_job_is_recorded(
    qtbot, model, isolated_home, tmp_path, caplog
):
    three_bands = write_raster(tmp_path / "rgb.tif", np.ones((3, 40, 40), dtype=np.uint16))
    worker = JobWorker(tiny_predict_spec(model, three_bands, tmp_path / "out"), isolated_home)
    with caplog.at_level(logging.INFO, logger="modelai_desktop.workers"):
        message, detail = start_and_wait(qtbot, worker, "failed")
    assert "expects 5 band(s)" in message and "the raster has 3 band(s)" in message
    assert detail == "", "bad input is no bug: no traceback"
    assert worker.job_id is None
    with open_store(isolated_home) as store:
        assert store.list_jobs() == []
    [record] = [record for record in caplog.records if "expects 5 band(s)" in record.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage().startswith("The job was not started: ") and "Job None" not in caplog.text
    assert "Traceback" not in caplog.text


def test_engine_advice_names_the_window_controls_not_command_line_flags(
    qtbot, model, scene, isolated_home, tmp_path
):
    out = tmp_path / "out"
    start_and_wait(qtbot, JobWorker(tiny_predict_spec(model, scene, out), isolated_home), "finished")
    message, _ = start_and_wait(
        qtbot, JobWorker(tiny_predict_spec(model, scene, out), isolated_home), "failed"
    )
    assert "already exist" in message and "“Replace existing outputs”" in message
    assert "--overwrite" not in message
    assert in_window_terms("Lower --batch-size or --patch.") == "Lower “Batch size” or “Patch size”."
    assert in_window_terms("pass --patches-per-epoch 8") == "pass “Patches / epoch” 8"
    assert in_window_terms("holds epoch 3. Resume with --resume /a b/last.ckpt.") == (
        "holds epoch 3. Press Resume to continue from it."
    )


def test_a_worker_runs_once(qtbot, model, scene, isolated_home, tmp_path):
    worker = JobWorker(tiny_predict_spec(model, scene, tmp_path / "out"), isolated_home)
    start_and_wait(qtbot, worker, "finished")
    with pytest.raises(RuntimeError, match="runs its job once"):
        worker.start()


def test_the_registry_finds_a_running_job_stops_it_and_forgets_it(
    qtbot, model, large_scene, isolated_home, tmp_path
):
    registry = JobRegistry()
    worker = JobWorker(tiny_predict_spec(model, large_scene, tmp_path / "out"), isolated_home)
    registry.add(worker)
    seen: list[tuple] = []

    def stop_on_first_progress(event: ProgressEvent) -> None:
        if not seen:
            seen.append((registry.find(worker.job_id), registry.last_progress(worker.job_id)))
            seen.append(registry.stop_all(5000))

    worker.progress.connect(stop_on_first_progress)
    with qtbot.waitSignal(worker.cancelled, timeout=JOB_TIMEOUT_MS):
        worker.start()
    (found, progress), stopped = seen
    assert found is worker and progress.stage == "predict" and stopped
    qtbot.waitUntil(lambda: registry.workers() == [], timeout=10000)
    assert registry.find(worker.job_id) is None
