"""Load from the window: ten jobs queued at once all run, one at a time, and leave nothing open."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest

from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.synthetic import write_scene
from engine.training import train
from modelai_desktop.workers import JobWorker
from tests.engine.runner_child import tiny_config, tiny_predict_spec, write_training_data

pytestmark = pytest.mark.gui
JOBS = 10
TIMEOUT_S = 120.0
FD_FOLDER = Path("/proc/self/fd")


def open_descriptors() -> int:
    return sum(1 for _ in FD_FOLDER.iterdir())


def python_threads() -> int:
    """Threads started from Python. A QThread that ran Python code (rasterio asks for the current
    thread) stays listed as a dummy thread after it ended: CPython never drops those entries, and
    whether a later thread reuses one depends on the C library recycling thread ids."""
    return sum(not isinstance(thread, threading._DummyThread) for thread in threading.enumerate())


@pytest.mark.skipif(not FD_FOLDER.exists(), reason="counts open files through /proc")
def test_ten_jobs_queued_from_the_window_complete_without_leaks(window, run, until, tmp_path, isolated_home):
    data = write_training_data(tmp_path / "data")
    model = train(tiny_config(data, tmp_path / "tiny.safetensors")).model_path
    scenes = [
        write_scene(tmp_path / "scenes", f"s{index}", size=(64, 64), seed=index).image
        for index in range(JOBS)
    ]
    window.show_page("jobs")
    descriptors, threads = open_descriptors(), python_threads()
    finished: list[int] = []

    async def scenario() -> None:
        for index, scene in enumerate(scenes):
            worker = JobWorker(tiny_predict_spec(model, scene, tmp_path / f"out{index}"), isolated_home)
            worker.finished.connect(lambda outcome: finished.append(outcome.job_id))
            window.jobs.add(worker)
            worker.start()
        await until(lambda: len(finished) == JOBS, "all ten jobs to finish", TIMEOUT_S)
        await until(lambda: not window.jobs.workers(), "the workers to be released")
        await window.jobs_page.refresh()
        await window.tasks.wait_idle()

    run(scenario())
    with open_store(isolated_home) as store:
        jobs = store.list_jobs()
    assert len(jobs) == JOBS and {job.status for job in jobs} == {JobStatus.SUCCEEDED}
    intervals = sorted((job.started, job.finished) for job in jobs)
    assert all(end <= start for (_, end), (start, _) in itertools.pairwise(intervals)), "one job at a time"
    assert all((tmp_path / f"out{index}" / f"s{index}_classes.tif").is_file() for index in range(JOBS))
    assert window.jobs_page.table.job_model.rowCount() == JOBS
    assert open_descriptors() <= descriptors + 2, "no file handle leaked"
    assert python_threads() <= threads + 2, f"no thread leaked: {threading.enumerate()}"
