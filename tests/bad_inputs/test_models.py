"""Damaged and hostile model files through the command line: ``predict`` refuses them before a job
is queued and ``models show`` refuses them too. The loader's own cases are in
tests/engine/test_model_file.py; these prove that its errors reach the user as one clear line."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch

from engine.errors import ModelFileError
from engine.jobs.runner import open_store, submit
from engine.jobs.specs import PredictSpec
from engine.models import build_model
from engine.models.file import read_metadata
from tests.bad_inputs.conftest import assert_refused_before_any_job, recorded_jobs
from tests.engine.test_model_file import file_creating_pickle


def edited_metadata(source: Path, target: Path, edit: Callable[[dict], None]) -> None:
    """Copies a model file with its metadata JSON changed by ``edit``, as a hand edit would."""
    data = source.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + length])
    metadata = json.loads(header["__metadata__"]["modelai"])
    edit(metadata)
    header["__metadata__"]["modelai"] = json.dumps(metadata)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    target.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + length :])


def _truncated(source: Path, target: Path) -> None:
    target.write_bytes(source.read_bytes()[: source.stat().st_size // 2])


def _bands_edited(source: Path, target: Path) -> None:
    edited_metadata(source, target, lambda metadata: metadata.update(bands=[1, 2, 3]))


def _future_version(source: Path, target: Path) -> None:
    edited_metadata(source, target, lambda metadata: metadata.update(format_version=99))


def _wrong_shapes(source: Path, target: Path) -> None:
    metadata = read_metadata(source)
    three_band = build_model("unet", metadata.hyperparameters | {"in_channels": 3})
    safetensors.torch.save_file(three_band.state_dict(), target, metadata={"modelai": metadata.to_json()})


def _normalization_method_edited(source: Path, target: Path) -> None:
    edited_metadata(source, target, lambda metadata: metadata["normalization"].update(method="zscore"))


def _normalization_shortened(source: Path, target: Path) -> None:
    def shorten(metadata: dict) -> None:
        metadata["normalization"].update(
            offset=metadata["normalization"]["offset"][:2], scale=metadata["normalization"]["scale"][:2]
        )

    edited_metadata(source, target, shorten)


def _pickle(source: Path, target: Path) -> None:
    target.write_bytes(file_creating_pickle(target.with_name("created-by-payload.txt")))


BAD_MODELS = {
    "truncated": (_truncated, ["it is truncated", "Copy the model file again"]),
    "edited metadata": (_bands_edited, ["the network takes 4 bands, but 3 are listed", "train a new model"]),
    "weights of the wrong shape": (
        _wrong_shapes,
        ["weights do not fit a unet network (size mismatch for encoder.0.0.weight", "train a new model"],
    ),
    "future format version": (
        _future_version,
        ["made by a newer ModelAI (model format 99", "Update the app"],
    ),
    "unknown normalisation method": (
        _normalization_method_edited,
        ["its normalisation block is unusable", "train a new model"],
    ),
    "normalisation for fewer bands": (
        _normalization_shortened,
        ["its normalisation covers 2 band(s), but the model reads 4", "train a new model"],
    ),
    "pickle with a payload": (_pickle, ["is a Python pickle", "never opens pickles"]),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_files_are_refused_by_predict_and_models_show(
    case, four_band_model, four_band_raster, modelai, isolated_home, tmp_path
):
    damage, phrases = BAD_MODELS[case]
    bad = tmp_path / "bad.safetensors"
    damage(four_band_model, bad)
    output = tmp_path / "out"
    predicted = modelai("predict", bad, four_band_raster("field.tif"), "-o", output)
    assert_refused_before_any_job(predicted, isolated_home, output, bad, *phrases)
    shown = modelai("models", "show", bad)
    assert (shown.code, shown.out, shown.error_line) == (2, "", predicted.error_line)

    with open_store() as store, pytest.raises(ModelFileError, match=re.escape(phrases[0])):
        submit(store, PredictSpec(bad, [four_band_raster("field.tif")], output))
    assert recorded_jobs(isolated_home) == []
    assert not (tmp_path / "created-by-payload.txt").exists()


def test_a_pickle_payload_never_runs_in_a_real_process(tmp_path):
    evil = tmp_path / "model.pt"
    created = tmp_path / "created-by-payload.txt"
    evil.write_bytes(file_creating_pickle(created))
    for command in (["models", "show", str(evil)], ["predict", str(evil), str(evil), "-o", str(tmp_path)]):
        done = subprocess.run(
            [sys.executable, "-m", "engine", *command], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith(f"modelai: error: {evil} is a Python pickle")
    assert not created.exists()
