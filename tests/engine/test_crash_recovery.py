"""A training process killed mid-epoch: the store stays sound, the job shows interrupted, and it resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.cli import main
from engine.jobs.records import JobStatus
from engine.jobs.store import JobStore
from engine.models.file import read_metadata
from engine.paths import HOME_ENV_VAR, jobs_db_path
from tests.engine.runner_child import write_training_data

CHILD = Path(__file__).with_name("runner_child.py")
EPOCHS = 3


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_training_killed_mid_epoch_resumes_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "elsewhere"))
    home, data, model = tmp_path / "home", write_training_data(tmp_path / "data"), tmp_path / "m.safetensors"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "train", *map(str, (home, data, model, EPOCHS))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    job_line = child.stdout.readline()
    assert job_line.strip().isdigit(), child.communicate(timeout=30)[1]
    job_id = int(job_line)
    with JobStore(jobs_db_path(home)) as watcher:
        deadline = time.monotonic() + 120
        while not watcher.epochs(job_id):
            assert child.poll() is None, child.communicate()[1]
            assert time.monotonic() < deadline, "the child never finished its first epoch"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        assert watcher.get_job(job_id).status is JobStatus.RUNNING

    with JobStore(jobs_db_path(home)) as store:
        assert store.integrity_ok()
    assert main(["--home", str(home), "jobs", "list"]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "KIND", "STATUS", "STARTED", "DURATION", "RESULT"]
    assert row.split()[:3] == [str(job_id), "train-segmentation", "interrupted"]
    with JobStore(jobs_db_path(home)) as store:
        crashed = store.get_job(job_id)
        assert crashed.status is JobStatus.INTERRUPTED and f"process {child.pid}" in crashed.error_message
        assert [epoch.epoch for epoch in store.epochs(job_id)] == [1]
        first_epoch = store.epochs(job_id)[0]
    assert not model.exists()

    assert main(["--home", str(home), "jobs", "resume", str(job_id)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == f"Model written to {model}"
    with JobStore(jobs_db_path(home)) as store:
        [resumed] = store.list_jobs(limit=1)
        assert (resumed.parent_job_id, resumed.status) == (job_id, JobStatus.SUCCEEDED)
        assert resumed.spec["resume"] == str(crashed.checkpoint_path)
        epochs = store.epochs(resumed.id)
        assert [epoch.epoch for epoch in epochs] == list(range(1, EPOCHS + 1))
        assert (epochs[0].train_loss, epochs[0].val_loss, epochs[0].metrics) == (
            first_epoch.train_loss,
            first_epoch.val_loss,
            first_epoch.metrics,
        )
    history = read_metadata(model).training["history"]
    assert [entry["epoch"] for entry in history] == list(range(1, EPOCHS + 1))
    assert history[0]["train_loss"] == first_epoch.train_loss
    assert not (tmp_path / "elsewhere").exists(), "--home did not win over MODELAI_HOME"
