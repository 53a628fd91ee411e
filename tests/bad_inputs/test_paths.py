"""Paths: spaces and non-ASCII letters work end to end, names too long for the file system and
read-only folders are refused before a job, and existing outputs are never overwritten unasked."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import OutputError
from engine.inference.predict import PredictOptions, predict_raster
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store, run, submit
from engine.jobs.specs import PredictSpec
from engine.progress import CancelToken, NullReporter
from tests.bad_inputs.conftest import (
    TINY_TRAINING,
    assert_refused_before_any_job,
    four_band_scene,
    leftovers,
    recorded_jobs,
)
from tests.engine.test_jobs import permissions_enforced

OUTPUT_SUFFIXES = ("_classes.tif", "_classes.qml", "_summary.json")


def test_spaces_and_non_ascii_letters_in_every_path(modelai, isolated_home, tmp_path):
    data = four_band_scene(tmp_path / "dossier é ñ 中文 with spaces")
    for kind in ("images", "masks"):
        (data / kind / "field.tif").rename(data / kind / "scène ñ 中文.tif")
    model = data / "modèle 中文.safetensors"
    trained = modelai("train", "segmentation", data / "images", data / "masks", "-o", model, *TINY_TRAINING)
    assert trained.code == 0, trained.err
    raster = data / "images" / "scène ñ 中文.tif"
    output = data / "sortie é"
    predicted = modelai("predict", model, raster, "-o", output)
    assert predicted.code == 0, predicted.err
    assert leftovers(output) == sorted(f"scène ñ 中文{suffix}" for suffix in OUTPUT_SUFFIXES)
    train_job, predict_job = recorded_jobs(isolated_home)
    assert train_job.spec["output"] == str(model) and predict_job.spec["rasters"] == [str(raster)]
    shown = modelai("jobs", "show", predict_job.id)
    assert str(output / "scène ñ 中文_classes.tif") in shown.out

    with open_store() as store:
        outcome = run(store, PredictSpec(model, [raster], output / "api"), NullReporter(), CancelToken())
    assert outcome.predictions[0].outputs["classes"].name == "scène ñ 中文_classes.tif"

    command = [sys.executable, "-m", "engine", "predict", str(model), str(raster), "-o", str(output / "sub")]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (output / "sub" / "scène ñ 中文_classes.tif").is_file()


def test_a_200_character_name_works_and_a_name_too_long_for_its_outputs_is_refused(
    four_band_model, four_band_raster, modelai, isolated_home, tmp_path
):
    long = four_band_raster("l" * 200 + ".tif")
    assert modelai("predict", four_band_model, long, "-o", tmp_path / "long", "--probabilities").code == 0
    assert len(leftovers(tmp_path / "long")) == 4

    stem = "長" * 83  # 249 bytes in UTF-8: the raster's name fits, its outputs' names do not
    too_long = four_band_raster(stem + ".tif")
    output = tmp_path / "too-long"
    result = modelai("predict", four_band_model, too_long, "-o", output)
    assert result.code == 2 and result.error_line.startswith(f"modelai: error: {too_long}: its output")
    assert f"{len(stem.encode()) + len('_summary.json')} bytes" in result.error_line
    assert "Give the raster a shorter name" in result.error_line
    assert leftovers(output) == []
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED]
    with pytest.raises(OutputError, match="more than the 255 that file systems allow"):
        predict_raster(four_band_model, too_long, output, PredictOptions(), NullReporter(), CancelToken())
    assert leftovers(output) == []


@pytest.fixture
def sandbox(four_band_model: Path, four_band_raster) -> Iterator[Path]:
    """A folder that the user ``nobody`` can reach, with a model, a raster and a writable data folder.

    Root ignores permission bits, so a root test run drops to ``nobody`` while the command runs; the
    pytest temporary folders are private to the test user, hence a folder of its own.
    """
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    (folder / "home").mkdir(mode=0o777)
    (folder / "home").chmod(0o777)
    shutil.copy(four_band_model, folder / "four.safetensors")
    shutil.copy(four_band_raster("field.tif"), folder / "field.tif")
    read_only = folder / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    try:
        yield folder
    finally:
        read_only.chmod(0o755)
        shutil.rmtree(folder)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX permission bits")
def test_read_only_output_folder_is_refused_before_a_job(sandbox, modelai):
    home, read_only = sandbox / "home", sandbox / "read-only"
    model, raster = sandbox / "four.safetensors", sandbox / "field.tif"
    with permissions_enforced():
        predicted = modelai("--home", home, "predict", model, raster, "-o", read_only)
        inside = modelai("--home", home, "predict", model, raster, "-o", read_only / "new")
        trained = modelai("--home", home, "train", "anomaly", raster, "-o", read_only / "m.safetensors")
        with open_store(home) as store, pytest.raises(OutputError, match="Permission denied"):
            submit(store, PredictSpec(model, [raster], read_only))
    for result, folder in ((predicted, read_only), (inside, read_only / "new"), (trained, read_only)):
        assert_refused_before_any_job(result, home, read_only, folder, "Permission denied", "writable folder")


def test_existing_outputs_are_never_overwritten_without_overwrite(
    four_band_model, four_band_raster, modelai, isolated_home, tmp_path
):
    raster, output = four_band_raster("field.tif"), tmp_path / "out"
    assert modelai("predict", four_band_model, raster, "-o", output).code == 0
    before = {name: (output / name).read_bytes() for name in leftovers(output)}
    again = modelai("predict", four_band_model, raster, "-o", output)
    assert again.code == 2 and "Use --overwrite to replace them" in again.error_line
    assert str(output / "field_classes.tif") in again.error_line
    assert {name: (output / name).read_bytes() for name in leftovers(output)} == before

    for name in ("field_classes.tif", "field_classes.qml"):
        (output / name).unlink()
    partial = modelai("predict", four_band_model, raster, "-o", output)
    assert partial.code == 2 and str(output / "field_summary.json") in partial.error_line
    assert leftovers(output) == ["field_summary.json"]
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED]

    assert modelai("predict", four_band_model, raster, "-o", output, "--overwrite").code == 0
    assert leftovers(output) == sorted(f"field{suffix}" for suffix in OUTPUT_SUFFIXES)
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED] * 2
