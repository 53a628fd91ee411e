"""Faults while a prediction writes: a disk that fills up, a process killed half-way.

Either way no output that looks finished remains, and the job store says what happened. A killed
process leaves its hidden temporaries (``.NAME.PID.RANDOM.tmp``), which no command takes for an output
or an input, and the next prediction of the same raster into that folder removes them.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import OutputError, RasterError
from engine.inference.outputs import RasterOutput
from engine.inference.predict import PredictOptions, predict_raster
from engine.jobs.records import JobStatus
from engine.progress import CancelToken, NullReporter
from engine.rasters.read import find_rasters
from tests.bad_inputs.conftest import assert_failed_job, leftovers, recorded_jobs

CHILD = Path(__file__).with_name("predict_child.py")
STRIPS = ["--tile", "64", "--overlap", "0", "--probabilities"]


@pytest.fixture
def fill_disk_after_three_writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Makes the fourth strip written to any output raster fail as a full disk does."""
    writes: list[int] = []
    write_rows = RasterOutput.write_rows

    def write_until_full(self: RasterOutput, row_off: int, data: np.ndarray) -> None:
        writes.append(row_off)
        if len(writes) > 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        write_rows(self, row_off, data)

    monkeypatch.setattr(RasterOutput, "write_rows", write_until_full)
    return writes


def test_disk_filling_up_mid_write_fails_the_job_and_leaves_nothing(
    fill_disk_after_three_writes, four_band_model, four_band_raster, modelai, isolated_home, tmp_path
):
    raster, output = four_band_raster("field.tif", height=256, width=64), tmp_path / "out"
    result = modelai("predict", four_band_model, raster, "-o", output, *STRIPS)
    job = assert_failed_job(result, isolated_home, output, output, "the disk is full", "Free some space")
    assert "OSError: [Errno 28]" in job.error_detail
    assert len(fill_disk_after_three_writes) == 4, "the disk must fill after work has started"

    options = PredictOptions(tile=64, overlap=0, probabilities=True)
    with pytest.raises(OutputError, match="the disk is full"):
        predict_raster(four_band_model, raster, output, options, NullReporter(), CancelToken())
    assert leftovers(output) == []


def user_namespaces_work() -> bool:
    """Whether this machine lets a process mount a small tmpfs of its own (Linux user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    probe = ["unshare", "--user", "--map-root-user", "--mount", "true"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def predict_on_a_small_disk(disk: Path, model: Path, rasters: list[Path]) -> subprocess.CompletedProcess:
    """``modelai predict`` into ``disk/out`` on a 256 kB tmpfs of its own; prints the exit code and
    what is left in the output folder."""
    script = (
        'mount -t tmpfs -o size=256k tmpfs "$1" || exit 99; out="$1/out"; shift; '
        '"$@" -o "$out" --tile 128 --overlap 16 --probabilities; echo "exit $?"; ls -A "$out"'
    )
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh"]
    arguments = [str(disk), sys.executable, "-m", "engine", "predict", str(model), *map(str, rasters)]
    disk.mkdir()
    return subprocess.run([*command, *arguments], capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not user_namespaces_work(), reason="needs unprivileged user namespaces to mount a tmpfs")
def test_outputs_too_large_for_the_disk_are_refused_before_any_job(
    four_band_model, four_band_raster, isolated_home, tmp_path
):
    """400x400 pixels with probabilities need 1.9 MB uncompressed: more than the whole disk."""
    disk = tmp_path / "small-disk"
    done = predict_on_a_small_disk(
        disk, four_band_model, [four_band_raster("big.tif", height=400, width=400)]
    )
    assert done.stdout.splitlines() == ["exit 2"], done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(
        f"modelai: error: Not enough free space in {disk}/out: the outputs of big.tif need"
    )
    assert recorded_jobs(isolated_home) == []


@pytest.mark.skipif(not user_namespaces_work(), reason="needs unprivileged user namespaces to mount a tmpfs")
def test_a_really_full_disk_is_reported_as_full(four_band_model, four_band_raster, isolated_home, tmp_path):
    """GDAL on a 256 kB tmpfs: it reports the write failure without the reason, the engine says why.

    Each raster's 147 kB of uncompressed outputs fits the disk (so the check before the job lets it
    run), but the finished rasters' compressed outputs stay, and soon the next one no longer fits.
    """
    rasters = [four_band_raster(f"big{index}.tif", height=128, width=128) for index in range(4)]
    disk = tmp_path / "small-disk"
    done = predict_on_a_small_disk(disk, four_band_model, rasters)
    lines = done.stdout.splitlines()
    assert lines[0] == "exit 2", done.stderr
    assert "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"modelai: error: Cannot write {disk}/out/big\d_\w+\.tif: the disk is full\..*", error
    )
    [job] = recorded_jobs(isolated_home)
    assert job.status is JobStatus.FAILED and "the disk is full" in job.error_message
    finished = {line.split("_")[0] for line in lines[1:]}
    assert len(finished) < len(rasters) and not any(line.endswith(".tmp") for line in lines[1:])
    assert all(len([line for line in lines[1:] if line.startswith(f"{stem}_")]) == 4 for stem in finished)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL is POSIX")
def test_prediction_killed_mid_way_is_interrupted_and_its_leftovers_are_cleaned_later(
    four_band_model, four_band_raster, modelai, isolated_home, tmp_path
):
    raster, output = four_band_raster("field.tif", height=96, width=96), tmp_path / "out"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), *map(str, (isolated_home, four_band_model, raster, output))],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stdout:
        if line.strip() == "tile 4":  # the first strip of three tiles is written, the second begun
            break
    else:
        pytest.fail(f"the child stopped early: {child.communicate()[1]}")
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)

    left = leftovers(output)
    assert left and all(re.fullmatch(rf"\.field_classes\.(tif|qml)\.{child.pid}\.\w+\.tmp", n) for n in left)
    with pytest.raises(RasterError, match=r"No rasters \(.*\) found"):
        find_rasters([output])
    listed = modelai("jobs", "list")
    assert listed.out.splitlines()[1].split()[:3] == ["1", "predict", "interrupted"]
    [job] = recorded_jobs(isolated_home)
    assert job.status is JobStatus.INTERRUPTED and f"process {child.pid}" in job.error_message

    again = modelai("predict", four_band_model, raster, "-o", output)
    assert again.code == 0, again.err
    assert leftovers(output) == ["field_classes.qml", "field_classes.tif", "field_summary.json"]
    assert [job.status for job in recorded_jobs(isolated_home)] == [
        JobStatus.INTERRUPTED,
        JobStatus.SUCCEEDED,
    ]
