"""What every bad-input case checks: the exit code and the one-line error, the outputs, the job store.

A case is refused either before a job is queued (validation: no job row at all) or while it runs
(a ``failed`` job holding the same error); in both cases no output and no temporary file remains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from engine.cli import EXIT_BAD_INPUT, main
from engine.jobs.records import JobRecord, JobStatus
from engine.jobs.store import JobStore
from engine.paths import jobs_db_path
from engine.training import TrainConfig, train
from tests.rasters import write_raster

TINY_TRAINING = ["--patch", "32", "--batch-size", "4", "--epochs", "1", "--base-width", "4", "--depth", "2"]
TINY_TRAINING += ["--device", "cpu", "--patches-per-epoch", "8"]


@dataclass(frozen=True)
class CliRun:
    """What one ``modelai`` command returned and printed."""

    code: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The last line on stderr, where the CLI prints its one-line error."""
        lines = self.err.strip().splitlines()
        return lines[-1] if lines else ""


@pytest.fixture
def modelai(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliRun]:
    """Runs ``modelai ARGS...`` in this process and checks that no traceback reached stderr."""

    def run(*args: object) -> CliRun:
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err, captured.err
        return CliRun(code, captured.out, captured.err)

    return run


def recorded_jobs(home: Path) -> list[JobRecord]:
    """The jobs in the store of ``home``, oldest first, once SQLite has found the store sound."""
    db = jobs_db_path(home)
    if not db.exists():
        return []
    with JobStore(db) as store:
        assert store.integrity_ok()
        return store.list_jobs(limit=None)[::-1]


def leftovers(folder: Path) -> list[str]:
    """Every file under ``folder``, hidden temporaries included; none when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


def assert_refused_before_any_job(run: CliRun, home: Path, output: Path, *named: object) -> None:
    """Exit 2 with one error line naming ``named``, no output left and no job recorded."""
    assert run.code == EXIT_BAD_INPUT, run.err
    assert run.error_line.startswith("modelai: error: "), run.err
    for name in named:
        assert str(name) in run.error_line
    assert leftovers(output) == []
    assert recorded_jobs(home) == []


def assert_failed_job(run: CliRun, home: Path, output: Path, *named: object) -> JobRecord:
    """Exit 2 with one error line naming ``named``, no output left, and one failed job holding it."""
    assert run.code == EXIT_BAD_INPUT, run.err
    for name in named:
        assert str(name) in run.error_line
    assert leftovers(output) == []
    [job] = recorded_jobs(home)
    assert job.status is JobStatus.FAILED
    assert run.error_line == f"modelai: error: {job.error_message}"
    return job


def four_band_scene(folder: Path, seed: int = 4) -> Path:
    """A 64×64 4-band uint16 image with a two-class mask (``images/field.tif``, ``masks/field.tif``)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((64, 64), dtype=np.uint8)
    mask[:, 32:] = 1
    image = rng.integers(500, 3000, size=(4, 64, 64), dtype=np.uint16)
    image[0, :, 32:] += 2000
    write_raster(folder / "images" / "field.tif", image)
    write_raster(folder / "masks" / "field.tif", mask[None])
    return folder


@pytest.fixture(scope="session")
def four_band_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net really trained (one tiny epoch) on 4-band uint16 rasters, so its file records 4 bands."""
    folder = four_band_scene(tmp_path_factory.mktemp("four-band"))
    config = TrainConfig(
        task="segmentation",
        images=[folder / "images"],
        masks=[folder / "masks"],
        output=folder / "four.safetensors",
        patch=32,
        batch_size=4,
        epochs=1,
        base_width=4,
        depth=2,
        device="cpu",
        patches_per_epoch=8,
        val_fraction=0.3,
    )
    return train(config).model_path


@pytest.fixture
def four_band_raster(tmp_path: Path) -> Callable[..., Path]:
    """Writes a raster the four-band model accepts: ``make(name, height=40, width=50)``."""

    def make(name: str, height: int = 40, width: int = 50) -> Path:
        data = np.random.default_rng(height * width).integers(500, 5000, size=(4, height, width))
        return write_raster(tmp_path / name, data.astype(np.uint16))

    return make
