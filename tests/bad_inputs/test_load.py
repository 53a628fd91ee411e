"""Load: fifty rasters in one ``modelai predict`` leak no file handle or thread, and memory does not
grow with the number of rasters."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.cli import predict as predict_command
from engine.cli.terminal import TerminalReporter
from engine.jobs.records import JobStatus
from engine.progress import ProgressEvent
from tests.bad_inputs.conftest import recorded_jobs
from tests.rasters import write_raster

RASTERS = 50
TILES = ["--tile", "32", "--overlap", "8"]
# What the allocator may keep after forty more rasters; a leak of one tile batch per raster
# (8 tiles × 4 bands × 64² float32 = 0.5 MB) would be 20 MB.
RSS_SLACK_BYTES = 8 * 1024 * 1024


def open_file_descriptors() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def resident_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
def test_fifty_rasters_in_one_command_leak_nothing(
    four_band_model, modelai, isolated_home, tmp_path, monkeypatch
):
    rng = np.random.default_rng(50)
    for index in range(RASTERS):
        data = rng.integers(500, 5000, size=(4, 64, 64), dtype=np.uint16)
        write_raster(tmp_path / "rasters" / f"r{index:02d}.tif", data)
    resident_at_start: dict[str, int] = {}

    class SamplingReporter(TerminalReporter):
        """Notes the resident memory when each raster's first tiles are done."""

        def on_progress(self, event: ProgressEvent) -> None:
            resident_at_start.setdefault(event.label, resident_bytes())
            super().on_progress(event)

    monkeypatch.setattr(predict_command, "TerminalReporter", SamplingReporter)
    warm_up = modelai("predict", four_band_model, tmp_path / "rasters" / "r00.tif", "-o", tmp_path / "warm")
    assert warm_up.code == 0, warm_up.err
    descriptors, threads = open_file_descriptors(), threading.active_count()

    result = modelai("predict", four_band_model, tmp_path / "rasters", "-o", tmp_path / "out", *TILES)
    assert result.code == 0, result.err
    assert f"{RASTERS} raster(s) predicted" in result.out
    assert len(list((tmp_path / "out").iterdir())) == 3 * RASTERS
    assert (open_file_descriptors(), threading.active_count()) == (descriptors, threads)
    growth = resident_at_start["r49.tif"] - resident_at_start["r09.tif"]
    assert growth < RSS_SLACK_BYTES, f"resident memory grew by {growth / 2**20:.1f} MB over 40 rasters"
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED] * 2
