"""``modelai predict``: files, folders and globs in, outputs and one-line errors out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.cli import EXIT_BAD_INPUT, main
from engine.synthetic import write_scene
from tests.engine.test_inference import save_test_model, write_raster


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("cli-models")
    normalization = {"method": "standard", "offset": [9500.0] * 5, "scale": [4000.0] * 5, "clip": False}
    bands = [1, 2, 3, 4, 5]
    unet = {"in_channels": 5, "num_classes": 4, "base_width": 4, "depth": 2}
    autoencoder = {"in_channels": 5, "base_width": 4, "depth": 2, "latent_channels": 2}
    common = {"bands": bands, "dtype": "uint16", "normalization": normalization}
    unet_path = save_test_model(folder / "unet.safetensors", "unet", unet, **common)
    ae_path = save_test_model(
        folder / "ae.safetensors", "conv_autoencoder", autoencoder, threshold=0.5, **common
    )
    return {"unet": unet_path, "ae": ae_path}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cli-scenes")
    for index in range(2):
        write_scene(folder, f"scene{index}", size=(96, 120), seed=index)
    return folder / "images"


SMALL_TILES = ["--tile", "64", "--overlap", "16"]


def test_predict_a_folder_writes_outputs_and_shows_progress(models, scenes, tmp_path, capsys):
    output = tmp_path / "results"
    code = main(
        ["predict", str(models["unet"]), str(scenes), "-o", str(output), *SMALL_TILES, "--probabilities"]
    )
    captured = capsys.readouterr()
    assert code == 0
    for stem in ("scene0", "scene1"):
        for suffix in ("_classes.tif", "_probabilities.tif", "_classes.qml", "_summary.json"):
            assert (output / f"{stem}{suffix}").is_file()
        assert f"{stem}.tif: {stem}_classes.tif" in captured.out
    assert "2 raster(s) predicted" in captured.out
    assert "predict" in captured.err and "MPix/s" in captured.err and "scene1.tif" in captured.err


def test_glob_and_anomaly_threshold(models, scenes, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(scenes.parent)
    output = tmp_path / "anomaly"
    code = main(
        [
            "predict",
            str(models["ae"]),
            "images/scene1*.tif",
            "-o",
            str(output),
            *SMALL_TILES,
            "--threshold",
            "0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in output.iterdir()) == [
        "scene1_anomaly.qml", "scene1_anomaly.tif", "scene1_anomaly_mask.qml", "scene1_anomaly_mask.tif",
        "scene1_summary.json",
    ]  # fmt: skip
    summary = json.loads((output / "scene1_summary.json").read_text())
    assert summary["threshold"] == 0.0 and summary["anomalous_fraction"] == 1.0


def test_existing_outputs_need_overwrite(models, scenes, tmp_path, capsys):
    arguments = [
        "predict",
        str(models["unet"]),
        str(scenes / "scene0.tif"),
        "-o",
        str(tmp_path),
        *SMALL_TILES,
    ]
    assert main(arguments) == 0
    capsys.readouterr()
    assert main(arguments) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "scene0_classes.tif" in error and "--overwrite" in error
    assert main([*arguments, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--tile", "64", "--overlap", "40"], "--overlap 40 must be between 0 and half the tile"),
        (["--precision", "fp16", "--device", "cpu"], "fp16 precision needs a GPU"),
        (
            ["--tile", "102", "--overlap", "16"],
            "--tile 102 is not a multiple of 4, which unet.safetensors needs; use 100",
        ),
    ],
)
def test_bad_options_exit_2_with_the_fix(models, scenes, tmp_path, capsys, extra, message):
    code = main(["predict", str(models["unet"]), str(scenes), "-o", str(tmp_path / "out"), *extra])
    assert code == EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_band_mismatch_exits_2_with_one_line_and_no_traceback(models, tmp_path):
    raster = write_raster(tmp_path / "rgb.tif", np.ones((3, 32, 32), dtype=np.uint16))
    command = [
        sys.executable,
        "-m",
        "engine",
        "predict",
        str(models["unet"]),
        str(raster),
        "-o",
        str(tmp_path / "o"),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in completed.stderr
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelai: error: ")
    assert "unet.safetensors expects 5 band(s)" in lines[0] and "rgb.tif" in lines[0]


def test_tta_predicts_segmentation_and_refuses_anomaly_models(models, scenes, tmp_path, capsys):
    arguments = ["predict", "--tta", *SMALL_TILES, str(scenes / "scene0.tif")]
    assert main([*arguments[:1], str(models["unet"]), *arguments[1:], "-o", str(tmp_path / "seg")]) == 0
    assert (tmp_path / "seg" / "scene0_classes.tif").exists()
    code = main([*arguments[:1], str(models["ae"]), *arguments[1:], "-o", str(tmp_path / "ae")])
    assert code == EXIT_BAD_INPUT
    assert "--tta is for segmentation models" in capsys.readouterr().err


@pytest.mark.parametrize(
    "training",
    [{"augment": False, "config": {"augment": None}}, {"config": {"augment": False}}],
    ids=["recorded-choice", "setting-of-an-older-run"],
)
def test_tta_refuses_a_model_trained_without_flips_and_turns(training, scenes, tmp_path, capsys):
    """Its turned views are ones it never learned: on real building data they cut IoU by more than half."""
    hyperparameters = {"in_channels": 5, "num_classes": 4, "base_width": 4, "depth": 2}
    bands = [1, 2, 3, 4, 5]
    model = tmp_path / "upright.safetensors"
    save_test_model(model, "unet", hyperparameters, bands, "uint16", training=training)
    output = tmp_path / "out"
    code = main(["predict", str(model), str(scenes / "scene0.tif"), "--tta", *SMALL_TILES, "-o", str(output)])
    assert code == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert "upright.safetensors was trained without them" in error and "--augment" in error
    assert not list(output.glob("*.tif"))
    assert main(["predict", str(model), str(scenes / "scene0.tif"), *SMALL_TILES, "-o", str(output)]) == 0
