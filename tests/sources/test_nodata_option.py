"""``--nodata VALUE`` for rasters that declare none, in prediction and training."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.cli import EXIT_OK, build_parser, main
from engine.cli.train import config_from_args
from engine.datasets import find_training_data
from engine.progress import NullReporter
from engine.rasters.read import read_info
from tests.engine.test_inference import save_test_model


@pytest.fixture(scope="module")
def collar_without_nodata(
    shared_data: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """rasterio's real RGB.byte.tif (a 0-valued collar on 32.5 % of it) with its nodata tag removed."""
    with rasterio.open(shared_data("rasterio/RGB.byte.tif")) as dataset:
        data, profile = dataset.read(), {**dataset.profile, "nodata": None}
    path = tmp_path_factory.mktemp("collar") / "scene.tif"
    with rasterio.open(path, "w", **profile) as output:
        output.write(data)
    return path


def test_predict_with_nodata_masks_the_collar(collar_without_nodata: Path, tmp_path: Path) -> None:
    hyperparameters = {"in_channels": 3, "num_classes": 2, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "m.safetensors", "unet", hyperparameters, [1, 2, 3], "uint8")
    nodata_fractions = []
    for extra in ([], ["--nodata", "0"]):
        output = tmp_path / f"out{len(extra)}"
        args = ["predict", str(model), str(collar_without_nodata), "-o", str(output), "--tile", "128", *extra]
        assert main(args) == EXIT_OK
        with rasterio.open(output / "scene_classes.tif") as classes:
            nodata_fractions.append(float(np.mean(classes.read(1) == 255)))
    assert nodata_fractions[0] == 0.0  # without the option the collar is predicted as land
    assert 0.30 < nodata_fractions[1] < 0.35


def test_train_takes_nodata_for_images_that_declare_none(
    collar_without_nodata: Path, shared_data: Callable[[str], Path], tmp_path: Path
) -> None:
    argv = [
        "train",
        "anomaly",
        str(collar_without_nodata),
        "-o",
        str(tmp_path / "m.safetensors"),
        "--nodata",
        "0",
    ]
    args = build_parser(argv).parse_args(argv)
    config = config_from_args(args)
    assert config.nodata == 0.0
    (pair,) = find_training_data(config.images, None, NullReporter(), nodata=config.nodata)
    assert pair.image.nodata == 0.0 and read_info(collar_without_nodata).nodata is None
    assert read_info(shared_data("rasterio/RGB.byte.tif"), nodata=7.0).nodata == 0.0  # declared wins
