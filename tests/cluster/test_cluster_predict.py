"""``modelai predict --cluster``: a real Dask cluster predicts an archive like a plain run, survives a
worker killed mid-raster, records a corrupt raster as failed while the others succeed, and stops
on a cancel; a rerun skips what is complete."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import dask
import distributed
import pytest

from engine.cli import EXIT_BAD_INPUT, main
from engine.cluster.local import torch_threads_per_worker
from engine.errors import JobCancelled
from engine.inference.predict import PredictOptions
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store, read_store, run
from engine.jobs.specs import PredictSpec
from engine.progress import CancelToken, NullReporter, ProgressEvent
from tests.cluster.conftest import (
    OVERLAP,
    RASTERS,
    TILE,
    TILE_OPTIONS,
    assert_same_pixels,
    leftover_temporaries,
)
from tests.cluster.worker_faults import DONE, WRITING, KillWorker

OUTPUTS_PER_RASTER = 3  # class map, its QGIS style, the summary


def test_a_local_cluster_predicts_like_a_plain_run_and_a_rerun_skips_every_raster(
    archive, plain_outputs, tmp_path, capsys
):
    model, rasters = archive
    output = tmp_path / "out"
    code = main(
        [
            "predict",
            str(model),
            str(rasters[0].parent),
            "-o",
            str(output),
            *TILE_OPTIONS,
            "--cluster",
            "local:2",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"{RASTERS} raster(s) predicted into {output}" in captured.out
    assert f"{RASTERS}/{RASTERS} rasters" in captured.err and "Traceback" not in captured.err
    assert_same_pixels(plain_outputs(torch_threads_per_worker(2)), output, rasters)
    with read_store() as store:
        [job] = store.list_jobs()
        artifacts = store.artifacts(job.id)
    assert job.status is JobStatus.SUCCEEDED and job.device == "Dask cluster local:2"
    assert job.spec["cluster"] == "local:2" and len(job.result["workers"]) == 2
    assert [entry["raster"] for entry in job.result["rasters"]] == [str(path) for path in rasters]
    assert all(entry["worker"].startswith("tcp://") for entry in job.result["rasters"])
    # Summaries name the user's model file, not the worker's copy of it.
    assert {entry["summary"]["model"] for entry in job.result["rasters"]} == {str(model)}
    assert len(artifacts) == RASTERS * OUTPUTS_PER_RASTER
    assert main(["jobs", "show", str(job.id)]) == 0
    shown = capsys.readouterr().out
    assert f"{rasters[0]}: " in shown and " on tcp://" in shown and "cluster: local:2" in shown

    assert main(["jobs", "rerun", str(job.id)]) == 0
    captured = capsys.readouterr()
    assert f"0 raster(s) predicted into {output}; {RASTERS} skipped" in captured.out
    with read_store() as store:
        rerun = store.list_jobs()[0]
    assert rerun.status is JobStatus.SUCCEEDED and len(rerun.result["skipped"]) == RASTERS


@pytest.mark.parametrize(
    ("when", "state"), [(WRITING, "temporary output present"), (DONE, "outputs complete")]
)
def test_a_worker_killed_during_or_after_a_raster_leaves_the_run_complete(
    archive, plain_outputs, cluster, tmp_path, capsys, when, state
):
    """Killed while writing: Dask runs the raster on another worker. Killed once the raster is
    written but before the client has its result: Dask runs the task again, which finds its
    complete outputs instead of refusing to overwrite them."""
    model, rasters = archive
    client, address = cluster
    output, marker = tmp_path / "out", tmp_path / "killed"
    output.mkdir()
    client.register_plugin(KillWorker(rasters[3].name, output, marker, when))
    try:
        argv = ["predict", str(model), *map(str, rasters), "-o", str(output), *TILE_OPTIONS]
        code = main([*argv, "--cluster", address])
    finally:
        client.unregister_worker_plugin(KillWorker.name)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert marker.read_text().splitlines()[1] == state
    assert int(marker.read_text().splitlines()[0]) not in client.run(os.getpid).values()
    assert_same_pixels(plain_outputs(1), output, rasters)
    assert leftover_temporaries(output) == []
    with read_store() as store:
        [job] = store.list_jobs()
    assert job.status is JobStatus.SUCCEEDED and len(job.result["rasters"]) == RASTERS


def test_a_raster_whose_workers_all_die_is_recorded_as_failed(archive, tmp_path, capsys):
    """Past Dask's allowed failures (none here) the raster fails, saying that workers died; so may
    a raster that waited on the same worker (Dask counts it as run there); the others succeed."""
    model, rasters = archive
    output, marker = tmp_path / "out", tmp_path / "killed"
    output.mkdir()
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as local,
        distributed.Client(local) as client,
    ):
        client.register_plugin(KillWorker(rasters[3].name, output, marker, WRITING))
        argv = ["predict", str(model), *map(str, rasters), "-o", str(output), *TILE_OPTIONS]
        code = main([*argv, "--cluster", local.scheduler_address])
    assert code == EXIT_BAD_INPUT
    with read_store() as store:
        [job] = store.list_jobs()
    failed = {Path(entry["raster"]): entry["error"] for entry in job.result["failed"]}
    assert rasters[3] in failed and len(failed) < RASTERS // 2
    assert all(
        error.startswith("every worker that had it died (1, the last tcp://") for error in failed.values()
    )
    assert len(job.result["rasters"]) == RASTERS - len(failed)
    for raster in rasters:
        assert len(list(output.glob(f"{raster.stem}_*"))) == (0 if raster in failed else OUTPUTS_PER_RASTER)
    assert f"{len(failed)} of {RASTERS} raster(s) failed" in capsys.readouterr().err


def test_a_corrupt_raster_is_recorded_as_failed_while_the_others_are_predicted(
    archive, plain_outputs, cluster, tmp_path, capsys
):
    model, rasters = archive
    _, address = cluster
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + os.urandom(2000))
    output = tmp_path / "out"
    argv = ["predict", str(model), *map(str, rasters), str(corrupt), "-o", str(output), *TILE_OPTIONS]
    code = main([*argv, "--cluster", address])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    [error] = [line for line in captured.err.splitlines() if line.startswith("modelai:")]
    assert f"1 of {RASTERS + 1} raster(s) failed" in error and "corrupt.tif: " in error
    assert "run the job again, which skips complete rasters" in error
    assert_same_pixels(plain_outputs(1), output, rasters)
    assert not list(output.glob("corrupt_*"))
    with read_store() as store:
        [job] = store.list_jobs()
        artifacts = store.artifacts(job.id)
    assert job.status is JobStatus.FAILED and "corrupt.tif" in (job.error_message or "")
    assert len(job.result["rasters"]) == RASTERS and len(artifacts) == RASTERS * OUTPUTS_PER_RASTER
    [failed] = job.result["failed"]
    assert failed["raster"] == str(corrupt) and "not a raster that GDAL can read" in failed["error"]

    # Once the raster is replaced by a good one, running the job again predicts only that one.
    shutil.copyfile(rasters[0], corrupt)
    assert main(["jobs", "rerun", str(job.id)]) == 0
    assert f"1 raster(s) predicted into {output}; {RASTERS} skipped" in capsys.readouterr().out


class CancelAfterFirstRaster(NullReporter):
    """Asks the store to cancel the job (as ``modelai jobs cancel`` or the Jobs page do) once the
    first raster of the run is done."""

    def __init__(self) -> None:
        self.asked = threading.Event()

    def on_progress(self, event: ProgressEvent) -> None:
        if event.stage == "rasters" and event.done >= 1 and not self.asked.is_set():
            self.asked.set()
            with open_store() as store:
                store.request_cancel(store.list_jobs()[0].id)


def test_cancel_stops_the_run_and_keeps_only_complete_rasters(archive, cluster, tmp_path, monkeypatch):
    model, rasters = archive
    client, address = cluster
    slow = [shutil.copyfile(path, tmp_path / path.name) for path in rasters]
    output = tmp_path / "out"
    # Small tiles make each raster slow enough that the cancel comes while most are still to do.
    options = PredictOptions(tile=TILE // 4, overlap=OVERLAP // 4, batch_size=1)
    spec = PredictSpec(model, [Path(path) for path in slow], output, options, cluster=address)
    reporter = CancelAfterFirstRaster()
    with open_store() as store, pytest.raises(JobCancelled):
        run(store, spec, reporter, CancelToken())
    with read_store() as store:
        [job] = store.list_jobs()
    assert reporter.asked.is_set() and job.status is JobStatus.CANCELLED
    finished = {Path(entry["raster"]).stem for entry in job.result["rasters"]}
    assert 1 <= len(finished) < RASTERS
    for path in slow:
        written = sorted(output.glob(f"{path.stem}_*"))
        assert len(written) == (OUTPUTS_PER_RASTER if path.stem in finished else 0), written
    assert leftover_temporaries(output) == []
    assert not any(client.processing().values())  # nothing left running on the cluster
