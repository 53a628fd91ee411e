"""``modelai train`` and ``modelai models show``, run in-process through engine.cli.main."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.cli import main
from engine.jobs.runner import open_store
from tests.engine.test_datasets import classes, image_from, truncated_geotiff
from tests.rasters import write_raster

TINY = ["--patch", "64", "--batch-size", "8", "--epochs", "2", "--base-width", "8", "--depth", "3"]
TINY += ["--patches-per-epoch", "16", "--lr", "0.01"]


def test_train_segmentation_then_show_the_model(
    scene_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "unet.safetensors"
    names = ["--class-names", "field,road,building,water"]
    train = scene_dir / "train"
    code = main(
        [
            "train",
            "segmentation",
            str(train / "images"),
            str(train / "masks"),
            "-o",
            str(output),
            *TINY,
            *names,
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.splitlines()[0].startswith("Device: CPU")
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "mean_iou" in captured.err
    assert captured.out.splitlines()[-1] == f"Model written to {output}"

    assert main(["models", "show", str(output)]) == 0
    shown = capsys.readouterr().out
    for expected in ("segmentation (unet)", "num_classes=4", "1, 2, 3, 4, 5 (input uint16)", "standard"):
        assert expected in shown
    assert "#8c8c8c  road" in shown and "64×64 pixels" in shown and "2 of 2 epochs" in shown

    assert main(["models", "show", str(output), "--json"]) == 0
    metadata = json.loads(capsys.readouterr().out)
    assert metadata["task"] == "segmentation" and metadata["patch_size"] == 64
    assert [c["name"] for c in metadata["classes"]] == ["field", "road", "building", "water"]
    assert len(metadata["training"]["history"]) == 2


def test_train_anomaly_shows_its_threshold(
    scene_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "ae.safetensors"
    args = ["train", "anomaly", str(scene_dir / "train" / "images"), "-o", str(output), *TINY]
    assert main([*args, "--threshold-quantile", "0.95"]) == 0
    assert f"Model written to {output}" in capsys.readouterr().out
    assert main(["models", "show", str(output)]) == 0
    shown = capsys.readouterr().out
    assert "anomaly (conv_autoencoder)" in shown and "quantile 0.95 of held-out normal pixels" in shown


def _scenes(
    tmp_path: Path, image: np.ndarray | None = None, mask: np.ndarray | None = None, **mask_options
) -> list[str]:
    """An images and a masks folder with one good pair ``a`` and optionally a second pair ``b``."""
    write_raster(tmp_path / "images" / "a.tif", image_from(classes()))
    write_raster(tmp_path / "masks" / "a.tif", classes()[None])
    if image is not None:
        write_raster(tmp_path / "images" / "b.tif", image)
    if mask is not None:
        write_raster(tmp_path / "masks" / "b.tif", mask[None], **mask_options)
    return ["segmentation", str(tmp_path / "images"), str(tmp_path / "masks")]


def _empty_folder(tmp_path: Path) -> list[str]:
    (tmp_path / "empty").mkdir()
    return ["anomaly", str(tmp_path / "empty")]


def _text_file(tmp_path: Path) -> list[str]:
    args = _scenes(tmp_path)
    (tmp_path / "images" / "a.tif").write_text("this is not a raster")
    return args


def _truncated(tmp_path: Path) -> list[str]:
    return ["anomaly", str(truncated_geotiff(tmp_path / "cut.tif"))]


def _band_counts(tmp_path: Path) -> list[str]:
    _scenes(tmp_path, image=image_from(classes(), bands=4), mask=classes())
    return ["anomaly", str(tmp_path / "images")]


BAD_INPUTS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "empty folder": (_empty_folder, "No rasters (.bil/.bip/.bsq/.envi/.img/.jp2/.tif/.tiff/.vrt) found"),
    "non-raster .tif": (_text_file, "not a raster that GDAL can read"),
    "truncated GeoTIFF": (_truncated, "truncated"),
    "image without mask": (lambda p: _scenes(p, image=image_from(classes())), "b.tif: no mask found"),
    "mask of another size": (lambda p: _scenes(p, image_from(classes()), classes(32, 64)), "size 64×32"),
    "mask of another CRS": (
        lambda p: _scenes(p, image_from(classes()), classes(), crs="EPSG:4326"),
        "CRS EPSG:4326 instead of EPSG:32618",
    ),
    "different band counts": (_band_counts, "has 4 band(s) but"),
    "bands out of range": (lambda p: [*_scenes(p), "--bands", "1,9"], "band(s) 9 do not exist"),
    "patch not a multiple": (lambda p: [*_scenes(p), "--patch", "96", "--depth", "6"], "multiple of 64"),
    "time budget too short": (lambda p: [*_scenes(p), "--time-budget", "5s"], "at least 10 s"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build, expected = BAD_INPUTS[case]
    args = build(tmp_path)
    code = main(["train", *args[:1], *TINY, *args[1:], "-o", str(tmp_path / "out" / "m.safetensors")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("modelai: error: "), err
    assert expected in err
    assert not (tmp_path / "out" / "m.safetensors").exists()


def test_existing_output_needs_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "m.safetensors"
    output.write_bytes(b"keep me")
    assert main(["train", *_scenes(tmp_path), "-o", str(output), *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert output.read_bytes() == b"keep me"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a usable GPU")
def test_cuda_without_gpu(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", *_scenes(tmp_path), "-o", str(tmp_path / "m.safetensors"), "--device", "cuda"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "Cannot use device 'cuda'" in err and "--device cpu" in err


def test_single_class_mask_warns_on_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _scenes(tmp_path, image=image_from(classes()), mask=np.zeros((64, 64), np.uint8))
    tiny = [*TINY, "--patch", "32", "--depth", "2", "--epochs", "1"]
    assert main(["train", *args, "-o", str(tmp_path / "m.safetensors"), *tiny]) == 0
    assert "warning: Mask" in capsys.readouterr().err


def test_bad_input_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    command = [
        sys.executable,
        "-m",
        "engine",
        "train",
        "segmentation",
        str(tmp_path / "empty"),
        str(tmp_path),
    ]
    process = subprocess.run(
        [*command, "-o", str(tmp_path / "m.safetensors")], capture_output=True, text=True, timeout=120
    )
    assert process.returncode == 2
    assert "Traceback" not in process.stderr
    assert process.stderr.strip().startswith("modelai: error:") and process.stderr.count("\n") == 1


def test_resume_runs_the_checkpoints_settings_and_records_them(
    scene_dir: Path, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 16: ``--resume`` used to replace the given options with the checkpoint's without a word,
    and the job record kept the options that never ran."""
    output = tmp_path / "unet.safetensors"
    train = scene_dir / "train"
    command = ["train", "segmentation", str(train / "images"), str(train / "masks"), "-o", str(output)]
    chosen = ["--bands", "1,2,3", "--patience", "5", "--class-names", "a,b,c,d", "--augment"]
    assert main([*command, *TINY, *chosen]) == 0
    checkpoint = str(tmp_path / "unet.checkpoints" / "last.ckpt")
    resume = [*command, "--resume", checkpoint, "--overwrite"]
    capsys.readouterr()

    assert main([*resume, "--lr", "0.5", "--patch", "32"]) == 2
    refusal = capsys.readouterr().err
    assert "--patch is 32 here but 64 in the checkpoint; --lr is 0.5 here but 0.01" in refusal
    assert main([*resume, "--no-augment"]) == 2
    assert "--augment is False here but True in the checkpoint" in capsys.readouterr().err
    assert main([*resume, "--epochs", "3"]) == 0
    assert "after epoch 2 of 3" in capsys.readouterr().err
    with open_store(isolated_home) as store:
        [resumed, first] = store.list_jobs()
        assert len(store.epochs(resumed.id)) == 3, "the third epoch asked for ran"
    ran = {name: resumed.spec[name] for name in ("epochs", "lr", "patch", "batch_size", "patience")}
    assert ran == {"epochs": 3, "lr": 0.01, "patch": 64, "batch_size": 8, "patience": 5}
    assert (resumed.spec["bands"], resumed.spec["class_names"]) == ([1, 2, 3], ["a", "b", "c", "d"])
    assert resumed.spec["augment"] is True, "augmentation, off by default, stays on as the checkpoint had it"
    assert first.spec["epochs"] == 2
