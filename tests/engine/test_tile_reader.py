"""The tile reader gives the same batches whether it reads ahead in a thread or between batches."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from engine.errors import RasterError
from engine.inference.grid import TileGrid
from engine.inference.reader import TileReader
from engine.rasters.normalize import Normalization
from engine.rasters.read import read_info
from tests.rasters import corrupt_block, write_raster

NORMALIZATION = Normalization("standard", [1000.0, 2000.0], [100.0, 200.0], False, [])


def read_everything(path, prefetch: bool) -> list:
    info = read_info(path)
    grid = TileGrid(info.height, info.width, 64, 16, size_multiple=16, weight_mode="hann")
    with TileReader(info, grid, [1, 2], NORMALIZATION, batch_size=3, prefetch=prefetch) as reader:
        return list(reader)


@pytest.fixture
def raster_with_holes(tmp_path):
    data = np.random.default_rng(0).integers(500, 3000, size=(2, 150, 170), dtype=np.uint16)
    data[:, :64, :64] = 0  # a tile that is all nodata is read but never computed
    data[:, 100:110, 120:140] = 0
    return write_raster(tmp_path / "holes.tif", data, nodata=0)


def test_reading_ahead_and_reading_in_turn_give_identical_batches(raster_with_holes):
    ahead, in_turn = (read_everything(raster_with_holes, prefetch) for prefetch in (True, False))
    assert len(ahead) == len(in_turn) > 2
    assert any(not busy for batch in in_turn for busy in batch.busy)
    for first, second in zip(ahead, in_turn, strict=True):
        assert first.tiles == second.tiles and first.busy == second.busy
        for valid_a, valid_b in zip(first.valid, second.valid, strict=True):
            np.testing.assert_array_equal(valid_a, valid_b)
        np.testing.assert_array_equal(first.inputs, second.inputs)


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_corrupt_block_is_raised_by_the_iteration(tmp_path, prefetch):
    data = np.random.default_rng(1).integers(500, 3000, size=(2, 256, 256), dtype=np.uint16)
    path = write_raster(
        tmp_path / "damaged.tif", data, tiled=True, blockxsize=64, blockysize=64, compress="deflate"
    )
    corrupt_block(path, column=1, row=2)
    with pytest.raises(RasterError, match=r"damaged\.tif: pixels in rows .* cannot be read"):
        read_everything(path, prefetch)


def test_leaving_early_stops_the_reading_thread(raster_with_holes):
    info = read_info(raster_with_holes)
    grid = TileGrid(info.height, info.width, 32, 0, size_multiple=16, weight_mode="hann")
    with TileReader(info, grid, [1, 2], NORMALIZATION, batch_size=1, prefetch=True) as reader:
        next(iter(reader))
        assert [t for t in threading.enumerate() if t.name == f"read {raster_with_holes.name}"]
    assert not [t for t in threading.enumerate() if t.name == f"read {raster_with_holes.name}"]
