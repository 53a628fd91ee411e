"""The job runner on real stores, real rasters and real (tiny) training: lifecycle, queue, validation."""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from engine.errors import (
    BandMismatchError,
    DatasetError,
    DeviceError,
    JobCancelled,
    JobStoreError,
    OutputError,
    RasterError,
)
from engine.inference.predict import PredictOptions
from engine.jobs.records import HOST, ArtifactKind, JobStatus
from engine.jobs.runner import open_store, rerun, resume_spec, run, run_job, submit
from engine.jobs.specs import PredictSpec, TrainSpec, allow_overwrite, spec_from_dict, spec_to_dict, validate
from engine.jobs.store import JobStore
from engine.models.file import library_versions
from engine.progress import CancelToken, EpochEvent, NullReporter, ProgressEvent, RecordingReporter
from engine.training import checkpoint_path_for
from engine.training.config import settings_hash
from tests.engine.runner_child import tiny_config, tiny_predict_spec, write_training_data
from tests.rasters import write_raster

CHILD = Path(__file__).with_name("runner_child.py")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with open_store(tmp_path / "home") as job_store:
        yield job_store


def wait_until(condition: Callable[[], object], failure: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.02)


class CancelAfterFirstBatch(RecordingReporter):
    """Sets the caller's token on the first batch, as a Cancel button would."""

    def __init__(self, cancel: CancelToken) -> None:
        super().__init__()
        self.cancel = cancel

    def on_progress(self, event: ProgressEvent) -> None:
        super().on_progress(event)
        self.cancel.cancel()


class RaiseAfterFirstEpoch(NullReporter):
    """Raises an exception (a second Ctrl-C, or a bug) once the first epoch has been recorded."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def on_epoch(self, event: EpochEvent) -> None:
        raise self.error


def test_training_job_records_epochs_model_checkpoint_and_result(store, data, tmp_path):
    reporter = RecordingReporter()
    outcome = run(
        store, TrainSpec(tiny_config(data, tmp_path / "m.safetensors", epochs=2)), reporter, CancelToken()
    )

    job = store.get_job(outcome.job_id)
    assert (job.kind, job.status, job.error_message) == ("train-segmentation", JobStatus.SUCCEEDED, None)
    assert job.device.startswith("cpu (") and job.versions == library_versions()
    assert (job.pid, job.host) == (os.getpid(), HOST)
    assert job.checkpoint_path == checkpoint_path_for(tiny_config(data, tmp_path / "m.safetensors"))
    assert job.duration_s > 0 and job.started <= job.finished
    assert [e.epoch for e in store.epochs(job.id)] == [1, 2] == [e.epoch for e in reporter.epochs]
    assert store.epochs(job.id)[1].train_loss == pytest.approx(reporter.epochs[1].train_loss)
    assert {(a.kind, a.path) for a in store.artifacts(job.id)} == {
        (ArtifactKind.MODEL, tmp_path / "m.safetensors"),
        (ArtifactKind.CHECKPOINT, job.checkpoint_path),
    }
    assert job.result["model"] == str(tmp_path / "m.safetensors")
    assert (job.result["epochs_run"], job.result["monitor"]) == (2, "mean_iou")
    assert job.result["best_metric"] == outcome.training.best_metric
    assert job.spec == spec_to_dict(TrainSpec(tiny_config(data, tmp_path / "m.safetensors", epochs=2)))


def test_prediction_job_records_every_output(store, model, data, tmp_path):
    spec = tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out")
    outcome = run(store, spec, NullReporter(), CancelToken())
    job = store.get_job(outcome.job_id)
    assert (job.kind, job.status) == ("predict", JobStatus.SUCCEEDED)
    [prediction] = outcome.predictions
    recorded = {(a.kind, a.path) for a in store.artifacts(job.id)}
    assert recorded == {
        (ArtifactKind.CLASSES, tmp_path / "out" / "scene0_classes.tif"),
        (ArtifactKind.STYLE, tmp_path / "out" / "scene0_classes.qml"),
        (ArtifactKind.SUMMARY, tmp_path / "out" / "scene0_summary.json"),
    }
    assert all(path.exists() for _, path in recorded)
    assert job.result["rasters"][0]["summary"] == json.loads(json.dumps(prediction.summary))
    assert store.epochs(job.id) == []


def test_cancel_from_the_reporter_records_a_resumable_cancelled_job(store, data, tmp_path):
    cancel = CancelToken()
    with pytest.raises(JobCancelled, match="cancelled during epoch 1") as caught:
        run(
            store,
            TrainSpec(tiny_config(data, tmp_path / "m.safetensors")),
            CancelAfterFirstBatch(cancel),
            cancel,
        )
    [job] = store.list_jobs()
    assert (job.status, job.error_message) == (JobStatus.CANCELLED, str(caught.value))
    assert job.finished is not None and job.checkpoint_path.is_file()
    assert f"job {job.id}" in caught.value.__notes__[0]
    assert not (tmp_path / "m.safetensors").exists()
    assert resume_spec(store, job.id).config.resume == job.checkpoint_path


def test_cancel_requested_through_the_store_stops_a_running_job(store, model, data, tmp_path):
    class CancelFromAnotherProcess(RecordingReporter):
        def on_progress(self, event: ProgressEvent) -> None:
            super().on_progress(event)
            with JobStore(store.path) as other:
                [running] = other.list_jobs(status="running")
                other.request_cancel(running.id)

    reporter = CancelFromAnotherProcess()
    spec = tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out")
    with pytest.raises(JobCancelled):
        run(store, spec, reporter, CancelToken())
    [job] = store.list_jobs()
    assert (job.status, job.cancel_requested) == (JobStatus.CANCELLED, True)
    assert len(reporter.progress) < 9, "the job ran to its end despite the cancel request"
    assert store.artifacts(job.id) == [] and not any((tmp_path / "out").iterdir())


def test_second_interrupt_leaves_an_interrupted_job_that_resumes_with_its_history(store, data, tmp_path):
    config = tiny_config(data, tmp_path / "m.safetensors", epochs=2)
    with pytest.raises(KeyboardInterrupt):
        run(store, TrainSpec(config), RaiseAfterFirstEpoch(KeyboardInterrupt()), CancelToken())
    [job] = store.list_jobs()
    assert job.status is JobStatus.INTERRUPTED and f"modelai jobs resume {job.id}" in job.error_message
    assert [e.epoch for e in store.epochs(job.id)] == [1]

    outcome = run(store, resume_spec(store, job.id), RecordingReporter(), CancelToken(), parent_job_id=job.id)
    resumed = store.get_job(outcome.job_id)
    assert (resumed.status, resumed.parent_job_id) == (JobStatus.SUCCEEDED, job.id)
    assert [e.epoch for e in store.epochs(resumed.id)] == [1, 2]
    assert store.epochs(resumed.id)[0].train_loss == store.epochs(job.id)[0].train_loss
    assert outcome.training.epochs_run == 2


def test_bad_input_found_while_running_is_stored_with_its_cause(store, model, data, tmp_path):
    raster = tmp_path / "scene.tif"
    raster.write_bytes((data / "images" / "scene0.tif").read_bytes())
    job_id = submit(store, tiny_predict_spec(model, raster, tmp_path / "out"))
    raster.write_bytes(b"II*\x00" + b"\x00" * 200)
    with pytest.raises(RasterError) as caught:
        run_job(store, job_id, NullReporter(), CancelToken())
    job = store.get_job(job_id)
    assert (job.status, job.error_message) == (JobStatus.FAILED, str(caught.value))
    assert job.error_detail.splitlines()[0] == f"RasterError: {caught.value}"
    assert "RasterioIOError" in job.error_detail.splitlines()[1]


def test_mask_removed_after_submit_fails_the_job_with_the_file_named(store, tmp_path):
    data = write_training_data(tmp_path / "data")
    job_id = submit(store, TrainSpec(tiny_config(data, tmp_path / "m.safetensors")))
    (data / "masks" / "scene1.tif").unlink()
    with pytest.raises(DatasetError, match=r"scene1\.tif: no mask found"):
        run_job(store, job_id, NullReporter(), CancelToken())
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED and "scene1.tif: no mask found" in job.error_message


def test_unexpected_error_is_stored_with_its_traceback_and_reraised_as_is(store, data, tmp_path):
    bug = ZeroDivisionError("a bug")
    with pytest.raises(ZeroDivisionError) as caught:
        run(
            store,
            TrainSpec(tiny_config(data, tmp_path / "m.safetensors")),
            RaiseAfterFirstEpoch(bug),
            CancelToken(),
        )
    assert caught.value is bug
    [job] = store.list_jobs()
    assert (job.status, job.error_message) == (JobStatus.FAILED, "internal error: ZeroDivisionError: a bug")
    assert job.error_detail.startswith("Traceback") and "on_epoch" in job.error_detail
    assert f"modelai jobs show {job.id}" in bug.__notes__[0]


def test_a_queued_job_waits_for_the_running_one_and_a_cancelled_one_never_runs(store, model, data, tmp_path):
    raster = data / "images" / "scene0.tif"
    release, first_started = threading.Event(), threading.Event()

    class Holding(NullReporter):
        def on_progress(self, event: ProgressEvent) -> None:
            first_started.set()
            assert release.wait(30)

    errors: list[BaseException] = []

    def run_in_thread(job_id: int, reporter: NullReporter) -> None:
        with JobStore(store.path) as own:
            try:
                run_job(own, job_id, reporter, CancelToken())
            except BaseException as exc:
                errors.append(exc)

    first, second, third = (
        submit(store, tiny_predict_spec(model, raster, tmp_path / str(i))) for i in range(3)
    )
    waiting = RecordingReporter()
    threads = [
        threading.Thread(target=run_in_thread, args=(first, Holding())),
        threading.Thread(target=run_in_thread, args=(second, waiting)),
        threading.Thread(target=run_in_thread, args=(third, NullReporter())),
    ]
    threads[0].start()
    assert first_started.wait(30)
    for thread in threads[1:]:
        thread.start()
    wait_until(lambda: waiting.messages, "the second job never reported that it waits")
    assert store.get_job(second).status is JobStatus.QUEUED
    assert store.request_cancel(third).status is JobStatus.CANCELLED
    threads[2].join(10)
    assert [type(error) for error in errors] == [JobCancelled]
    assert store.get_job(second).status is JobStatus.QUEUED
    release.set()
    for thread in threads[:2]:
        thread.join(30)
    assert len(errors) == 1
    jobs = {job_id: store.get_job(job_id) for job_id in (first, second, third)}
    assert jobs[first].finished <= jobs[second].started
    assert jobs[second].status is JobStatus.SUCCEEDED
    assert (jobs[third].status, jobs[third].started) == (JobStatus.CANCELLED, None)
    assert (
        "info",
        f"Waiting for job {first} (predict, running in process {jobs[first].pid}) to finish…",
    ) in (waiting.messages)


def test_two_processes_running_jobs_into_one_store_take_turns(store, model, data, tmp_path):
    go, home, raster = tmp_path / "go", store.path.parent, data / "images" / "scene0.tif"
    children = [
        subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                "predict",
                *map(str, (home, model, raster, tmp_path / label, 3, go)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for label in ("a", "b")
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
    go.touch()
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
    jobs = sorted(store.list_jobs(limit=None), key=lambda job: job.started)
    assert len(jobs) == 6 and {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    assert len({job.pid for job in jobs}) == 2
    for earlier, later in itertools.pairwise(jobs):
        assert earlier.finished <= later.started, f"jobs {earlier.id} and {later.id} ran at the same time"
    waited = [later for earlier, later in itertools.pairwise(jobs) if later.created < earlier.finished]
    assert waited, "no job was queued while another ran: the processes did not compete"
    assert store.integrity_ok()


@pytest.mark.parametrize("kind", ["train", "predict"])
def test_spec_round_trips_through_the_store(store, kind, model, data, tmp_path):
    if kind == "train":
        spec = TrainSpec(replace(tiny_config(data, tmp_path / "m.safetensors"), bands=[3, 1], patience=2))
    else:
        options = PredictOptions(tile=64, overlap=8, probabilities=True, threshold=0.5, overwrite=True)
        spec = PredictSpec(model, [data / "images" / "scene0.tif"], tmp_path / "out", options)
    job_id = submit(store, spec)
    assert spec_from_dict(spec.kind, json.loads(json.dumps(spec_to_dict(spec)))) == spec
    assert rerun(store, job_id) == spec


def test_relative_paths_are_stored_absolute(store, model, data, tmp_path, monkeypatch):
    monkeypatch.chdir(data)
    job_id = submit(store, tiny_predict_spec(model, Path("images/scene0.tif"), Path("out")))
    assert rerun(store, job_id).rasters == [data / "images" / "scene0.tif"]
    assert rerun(store, job_id).output_dir == data / "out"


def test_stored_specs_that_cannot_be_read_say_so(store):
    with pytest.raises(JobStoreError, match="unknown job kind 'export'"):
        spec_from_dict("export", {})
    with pytest.raises(JobStoreError, match=r"unknown prediction option.*colour"):
        spec_from_dict("predict", {"model": "m", "rasters": [], "output_dir": "o", "options": {"colour": 1}})
    with pytest.raises(JobStoreError, match="stored train-anomaly job cannot be read"):
        spec_from_dict("train-anomaly", {"task": "segmentation", "images": [], "output": "m"})


def test_specs_that_can_never_run_are_refused_without_a_job_row(store, model, data, tmp_path):
    three_bands = write_raster(tmp_path / "rgb.tif", np.ones((3, 32, 32), dtype=np.uint16))
    lonely = tmp_path / "lonely"
    write_training_data(lonely)
    (lonely / "masks" / "scene0.tif").unlink()
    (tmp_path / "taken.safetensors").write_bytes(b"")
    on_cpu = tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out")
    refused = [
        (RasterError, "no such file or folder", TrainSpec(tiny_config(tmp_path / "missing", tmp_path / "m"))),
        (DatasetError, "scene0.tif: no mask found", TrainSpec(tiny_config(lonely, tmp_path / "m"))),
        (OutputError, "already exists", TrainSpec(tiny_config(data, tmp_path / "taken.safetensors"))),
        (DatasetError, "--epochs must be at least 1", TrainSpec(tiny_config(data, tmp_path / "m", epochs=0))),
        (BandMismatchError, "expects 5 band", tiny_predict_spec(model, three_bands, tmp_path / "out")),
        (RasterError, "file not found", tiny_predict_spec(model, tmp_path / "gone.tif", tmp_path / "out")),
        (
            DeviceError,
            "fp16 precision needs a GPU",
            replace(on_cpu, options=replace(on_cpu.options, precision="fp16")),
        ),
    ]
    for error, message, spec in refused:
        with pytest.raises(error, match=message):
            submit(store, spec)
    done = run(
        store,
        tiny_predict_spec(model, data / "images" / "scene1.tif", tmp_path / "out"),
        NullReporter(),
        CancelToken(),
    )
    with pytest.raises(OutputError, match=r"scene1_classes\.tif.*--overwrite"):
        submit(store, rerun(store, done.job_id))
    assert [job.id for job in store.list_jobs()] == [done.job_id]
    assert validate(allow_overwrite(rerun(store, done.job_id))) == []


def test_resume_refuses_jobs_that_cannot_continue(store, model, data, tmp_path):
    done = run(
        store,
        tiny_predict_spec(model, data / "images" / "scene1.tif", tmp_path / "out"),
        NullReporter(),
        CancelToken(),
    )
    with pytest.raises(JobStoreError, match="only training resumes"):
        resume_spec(store, done.job_id)
    config = tiny_config(data, tmp_path / "m.safetensors").to_dict()
    succeeded = store.create_job("train-segmentation", json.dumps(config), status="running")
    store.mark_succeeded(succeeded, {})
    with pytest.raises(JobStoreError, match=f"job {succeeded} is succeeded.*rerun {succeeded}"):
        resume_spec(store, succeeded)
    lost = store.create_job("train-segmentation", json.dumps(config), status="running")
    store.record_epoch(lost, 1, 0.5, 0.5, {}, 1e-3, 1.0)
    store.mark_cancelled(lost)
    with pytest.raises(JobStoreError, match=f"left no checkpoint.*rerun {lost}"):
        resume_spec(store, lost)


def interrupted_before_first_checkpoint(store: JobStore, spec: TrainSpec) -> int:
    """What a job killed while it scanned its data leaves: its checkpoint path noted, no epoch, no file."""
    job_id = submit(store, spec)
    store.mark_running(job_id, "cpu", {})
    store.set_checkpoint(job_id, checkpoint_path_for(spec.config))
    store.mark_interrupted(job_id, "ModelAI was stopped while the job ran")
    return job_id


def test_a_job_never_resumes_from_another_runs_checkpoint(store, data, tmp_path):
    """Issue 18: a new run under a reused model name, killed before its first checkpoint, resumed from
    the old run's ``last.ckpt`` and ended at once as "succeeded" with the old run's epochs."""
    model = tmp_path / "m.safetensors"
    old = run(store, TrainSpec(tiny_config(data, model, epochs=1)), NullReporter(), CancelToken())
    model.rename(tmp_path / "renamed.safetensors")
    config = tiny_config(data, model, epochs=3)
    new = interrupted_before_first_checkpoint(store, TrainSpec(config))
    assert store.get_job(new).checkpoint_path == store.get_job(old.job_id).checkpoint_path

    spec = resume_spec(store, new)
    assert spec.config == config, "a job stopped before its first checkpoint starts again, as itself"
    outcome = run(store, spec, RecordingReporter(), CancelToken(), parent_job_id=new)
    assert outcome.training.epochs_run == 3 and len(outcome.training.history) == 3
    assert store.get_job(outcome.job_id).result["settings_hash"] == settings_hash(config)

    earlier = interrupted_before_first_checkpoint(store, TrainSpec(replace(config, lr=0.5, overwrite=True)))
    store.record_epoch(earlier, 1, 0.5, 0.5, {}, 1e-3, 1.0)
    with pytest.raises(JobStoreError, match=f"now belongs to job {outcome.job_id}.*rerun {earlier}"):
        resume_spec(store, earlier)


def test_running_a_job_that_another_process_runs_leaves_it_alone(store):
    spec = {"model": "m.safetensors", "rasters": ["a.tif"], "output_dir": "out"}
    job_id = store.create_job("predict", json.dumps(spec), status="running")
    raw = sqlite3.connect(store.path, isolation_level=None)
    try:
        raw.execute("UPDATE jobs SET pid = ? WHERE id = ?", (os.getppid(), job_id))
    finally:
        raw.close()
    with pytest.raises(JobStoreError, match=f"job {job_id} is running, not queued"):
        run_job(store, job_id, NullReporter(), CancelToken())
    job = store.get_job(job_id)
    assert (job.status, job.pid, job.error_message) == (JobStatus.RUNNING, os.getppid(), None)


def test_a_prediction_cancelled_on_its_second_raster_records_the_first_rasters_outputs(
    store, model, data, tmp_path
):
    class CancelOnSecondRaster(RecordingReporter):
        def on_progress(self, event: ProgressEvent) -> None:
            super().on_progress(event)
            if event.label == "scene1.tif":
                cancel.cancel()

    cancel = CancelToken()
    first, second = data / "images" / "scene0.tif", data / "images" / "scene1.tif"
    spec = tiny_predict_spec(model, first, tmp_path / "out")
    with pytest.raises(JobCancelled):
        run(store, replace(spec, rasters=[first, second]), CancelOnSecondRaster(), cancel)
    [job] = store.list_jobs()
    assert job.status is JobStatus.CANCELLED
    recorded = {(a.kind, a.path.name) for a in store.artifacts(job.id)}
    assert recorded == {
        (ArtifactKind.CLASSES, "scene0_classes.tif"),
        (ArtifactKind.STYLE, "scene0_classes.qml"),
        (ArtifactKind.SUMMARY, "scene0_summary.json"),
    }
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(name for _, name in recorded)
