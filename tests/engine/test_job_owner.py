"""A job's owning process is known by its pid and its start time, so a reused pid is told apart."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.jobs.records import JobStatus, process_alive, process_started
from engine.jobs.store import JobStore
from tests.engine.test_jobs import raw_execute

SPEC = json.dumps({"task": "segmentation", "epochs": 3})

pytestmark = pytest.mark.skipif(
    process_started(os.getpid()) is None, reason="this system does not tell when a process started"
)


@contextmanager
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    """A process that runs until the block ends."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        yield process
    finally:
        process.communicate(timeout=60)


def test_a_process_is_known_by_its_pid_and_start_time():
    own = process_started(os.getpid())
    assert own == process_started(os.getpid()) and process_alive(os.getpid(), own)
    with live_process() as other:
        assert process_started(other.pid) != own
        assert process_alive(other.pid, process_started(other.pid))
        assert not process_alive(other.pid, own)
    assert not process_alive(other.pid, own) and process_started(other.pid) is None


def test_a_job_whose_pid_another_program_reused_is_interrupted_and_blocks_nothing(tmp_path: Path):
    with live_process() as crashed_owner:
        crashed_started = process_started(crashed_owner.pid)
    with JobStore(tmp_path / "jobs.sqlite") as store, live_process() as other_program:
        crashed, living, waiting = (store.create_job("train", SPEC) for _ in range(3))
        store.mark_running(crashed, "cpu", {})
        store.mark_running(living, "cpu", {})
        # The crashed job's pid now belongs to another program; the living job's owner still runs.
        owners = {crashed: crashed_started, living: process_started(other_program.pid)}
        raw_execute(
            store.path,
            *(
                f"UPDATE jobs SET pid = {other_program.pid}, pid_started = '{started}' WHERE id = {job_id}"
                for job_id, started in owners.items()
            ),
        )
        assert store.start_if_next(waiting, "cpu", {}).id == living

        [recovered] = store.recover_interrupted()
        assert (recovered.id, recovered.status) == (crashed, JobStatus.INTERRUPTED)
        assert store.get_job(living).status is JobStatus.RUNNING
        assert store.get_job(living).pid_started == process_started(other_program.pid)


def test_a_new_job_records_when_its_process_started(tmp_path: Path):
    with JobStore(tmp_path / "jobs.sqlite") as store:
        queued = store.create_job("train", SPEC)
        running = store.create_job("train", SPEC, status="running")
        jobs = [store.get_job(job_id) for job_id in (queued, running)]
    assert {job.pid_started for job in jobs} == {process_started(os.getpid())}
