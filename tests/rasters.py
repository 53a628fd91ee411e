"""Small raster writers for tests that need a specific dtype, nodata or CRS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from engine.training.config import TrainConfig


def write_raster(
    path: Path,
    data: np.ndarray,
    nodata: float | None = None,
    crs: str | None = "EPSG:32618",
    pixel: float = 1.0,
    **overrides: object,
) -> Path:
    """Writes a (bands, rows, cols) array as a GeoTIFF with a north-up transform.

    ``overrides`` replace or add creation options (``transform``, ``tiled``, ``compress``...).
    """
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": from_origin(0, 100, pixel, pixel),
        "nodata": nodata,
        **overrides,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data)
    return path


def corrupt_block(path: Path, column: int, row: int, length: int | None = None) -> Path:
    """Overwrites the compressed bytes of one block of a tiled GeoTIFF (``length`` of them, default
    all) so that decoding it fails while the header and the other blocks stay readable."""
    with rasterio.open(path) as dataset:
        offset = int(dataset.get_tag_item(f"BLOCK_OFFSET_{column}_{row}", "TIFF", bidx=1))
        size = length or int(dataset.get_tag_item(f"BLOCK_SIZE_{column}_{row}", "TIFF", bidx=1))
    with path.open("r+b") as file:
        file.seek(offset)
        file.write(b"\xff" * size)
    return path


# One epoch of four tiny patches: for tests that need a training run to happen, not to learn.
ONE_TINY_EPOCH: dict[str, object] = {
    "patch": 32,
    "batch_size": 4,
    "epochs": 1,
    "patches_per_epoch": 4,
    "depth": 2,
    "device": "cpu",
}


def write_training_set(
    folder: Path, scenes: dict[str, tuple[np.ndarray, np.ndarray]], **settings: object
) -> TrainConfig:
    """Writes ``images/NAME.tif`` and ``masks/NAME.tif`` under ``folder`` for each ``(image, mask)``
    (``(bands, rows, cols)`` and ``(rows, cols)``); returns a segmentation config for them."""
    for name, (image, mask) in scenes.items():
        write_raster(folder / "images" / f"{name}.tif", image)
        write_raster(folder / "masks" / f"{name}.tif", mask[None])
    return TrainConfig(
        task="segmentation",
        images=[folder / "images"],
        masks=[folder / "masks"],
        output=folder / "model.safetensors",
        **settings,
    )
