"""An archive of small rasters, a tiny model, a real Dask cluster (two worker processes of one thread
each) and the outputs of a plain run to compare a cluster run's outputs with."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import distributed
import numpy as np
import pytest
import rasterio
import torch

from engine.inference.predict import PredictOptions, predict_many
from engine.progress import CancelToken, NullReporter
from engine.synthetic import write_scene
from tests.engine.test_inference import save_test_model

RASTERS = 8
CLUSTER_WORKERS = 2
SIZE = (128, 128)
TILE, OVERLAP = 64, 16
TILE_OPTIONS = ["--tile", str(TILE), "--overlap", str(OVERLAP)]


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """A tiny random U-Net (5 bands, 4 classes) and eight 128 x 128 scenes."""
    folder = tmp_path_factory.mktemp("archive")
    rasters = [write_scene(folder, f"scene{index}", size=SIZE, seed=index).image for index in range(RASTERS)]
    normalization = {"method": "standard", "offset": [9500.0] * 5, "scale": [4000.0] * 5, "clip": False}
    unet = {"in_channels": 5, "num_classes": 4, "base_width": 4, "depth": 2}
    model = save_test_model(
        folder / "unet.safetensors", "unet", unet, [1, 2, 3, 4, 5], "uint16", normalization=normalization
    )
    return model, rasters


@pytest.fixture(scope="module")
def plain_outputs(
    archive: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int], Path]:
    """The output folder of a plain run (what ``modelai predict`` runs) on ``threads`` torch threads:
    the same code on the same thread count must give the same pixels on a cluster."""
    model, rasters = archive
    folders: dict[int, Path] = {}

    def outputs(threads: int) -> Path:
        if threads not in folders:
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                folder = tmp_path_factory.mktemp(f"plain{threads}")
                options = PredictOptions(tile=TILE, overlap=OVERLAP)
                predict_many(model, rasters, folder, options, NullReporter(), CancelToken())
            finally:
                torch.set_num_threads(previous)
            folders[threads] = folder
        return folders[threads]

    return outputs


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[tuple[distributed.Client, str]]:
    """A real local cluster of two worker processes (one thread each), reached by its tcp:// address
    as a cluster started with ``dask scheduler`` and ``dask worker`` would be."""
    with (
        distributed.LocalCluster(
            n_workers=CLUSTER_WORKERS, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        distributed.Client(local) as client,
    ):
        yield client, local.scheduler_address


@pytest.fixture
def cluster(local_cluster: tuple[distributed.Client, str]) -> tuple[distributed.Client, str]:
    """The module's cluster once both workers are up again. A test that killed one leaves its nanny
    restarting it; a run started meanwhile scatters the model to the one worker left, and if that
    one is killed too, nothing holds the model any more and every raster is cancelled."""
    client, _ = local_cluster
    client.wait_for_workers(CLUSTER_WORKERS, timeout=120)
    return local_cluster


def assert_same_pixels(expected: Path, actual: Path, rasters: list[Path]) -> None:
    """Every GeoTIFF output of every raster holds exactly the same pixels in both folders."""
    for raster in rasters:
        outputs = sorted(expected.glob(f"{raster.stem}_*.tif"))
        assert outputs, f"no outputs of {raster.name} in {expected}"
        for output in outputs:
            with rasterio.open(output) as want, rasterio.open(actual / output.name) as got:
                assert np.array_equal(want.read(), got.read()), output.name


def leftover_temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp"))
