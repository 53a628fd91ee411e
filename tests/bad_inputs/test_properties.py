"""Properties over any input: streamed tiles rebuild every pixel once, and mask values are class ids
or refused.

tests/engine/test_tiling.py already checks the grid's weights for tiles that are multiples of 16;
here the whole streaming path (grid, weights, `StripBlender` and its row chunks) runs for any raster
size, tile, overlap and network size multiple. Normalisation and the model metadata loader have their
own property tests in tests/engine.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.datasets import IGNORE_INDEX, class_count, find_training_data
from engine.errors import DatasetError
from engine.inference.grid import StripBlender, TileGrid, pad_to_tile
from engine.progress import RecordingReporter
from tests.rasters import write_raster


@st.composite
def grids(draw: st.DrawFn) -> tuple[int, int, int, int, int, str, int]:
    """(height, width, tile, overlap, size_multiple, weight_mode, chunk_rows) that a grid accepts."""
    multiple = draw(st.sampled_from([1, 2, 4, 8, 16, 32]))
    tile = multiple * draw(st.integers(max(1, -(-8 // multiple)), max(1, 96 // multiple)))
    return (
        draw(st.integers(1, 260)),
        draw(st.integers(1, 260)),
        tile,
        draw(st.integers(0, tile // 2)),
        multiple,
        draw(st.sampled_from(["hann", "flat"])),
        draw(st.integers(1, 70)),
    )


@settings(max_examples=60, deadline=None)
@given(grids())
def test_streamed_tiles_rebuild_every_pixel_exactly_once(grid_arguments):
    """A linear field cut into tiles and blended back is the same field: the weights of the tiles over
    every pixel sum to one, and every row is handed out once, in order, whatever the sizes."""
    height, width, tile, overlap, multiple, mode, chunk_rows = grid_arguments
    grid = TileGrid(height, width, tile, overlap, multiple, mode)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    field = np.stack([rows / 100 + cols / 300, 1 - cols / 200])
    blender = StripBlender(grid, channels=2, chunk_rows=chunk_rows)
    rebuilt = np.full_like(field, np.nan)
    next_row = 0
    for strip in grid.strips():
        for window in strip:
            assert window.row_off + window.height <= height and window.col_off + window.width <= width
            values = pad_to_tile(field[:, window.rows, window.cols], grid.tile_height, grid.tile_width)
            blender.add(window, values, np.ones((window.height, window.width), dtype=bool))
        for row_off, values, valid in blender.finish_strip():
            assert row_off == next_row and 1 <= len(valid) <= chunk_rows and valid.all()
            rebuilt[:, row_off : row_off + len(valid)] = values
            next_row += len(valid)
    assert next_row == height
    assert grid.tile_height % multiple == 0 and grid.tile_width % multiple == 0
    np.testing.assert_allclose(rebuilt, field, atol=1e-4)


MASK_VALUES = [0, 1, 2, 7, 254, IGNORE_INDEX, 256, 1000]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.sampled_from(MASK_VALUES), min_size=1, max_size=48),
    nodata=st.sampled_from([None, 0, 7, IGNORE_INDEX]),
)
def test_mask_values_become_class_counts_or_a_clear_error(tmp_path: Path, values, nodata):
    """Labelled values are those other than the mask's nodata; they must be ids 0–255. 255 means
    unlabelled, except in a mask of only 0 and 255 (binary: 255 is class 1)."""
    mask = np.resize(np.array(values, dtype=np.uint16), (6, 8))
    image = write_raster(tmp_path / "image.tif", np.full((2, 6, 8), 100, dtype=np.uint16))
    labels = write_raster(tmp_path / "mask.tif", mask[None], nodata=nodata)
    labelled = mask[mask != nodata] if nodata is not None else mask.ravel()
    ids, counts = np.unique(labelled, return_counts=True)
    binary = set(ids.tolist()) == {0, IGNORE_INDEX}
    expected = {
        (1 if binary and value == IGNORE_INDEX else int(value)): int(count)
        for value, count in zip(ids, counts, strict=True)
        if binary or value != IGNORE_INDEX
    }
    if (ids > IGNORE_INDEX).any():
        with pytest.raises(
            DatasetError, match=f"holds the value {ids[ids > IGNORE_INDEX].min()}, which is no"
        ):
            find_training_data([image], [labels], RecordingReporter())
    elif not expected:
        with pytest.raises(DatasetError, match="has no labelled pixel"):
            find_training_data([image], [labels], RecordingReporter())
    else:
        pairs = find_training_data([image], [labels], RecordingReporter())
        assert pairs[0].mask.class_pixels == expected and pairs[0].mask.binary == binary
        assert class_count(pairs) == max(2, max(expected) + 1)
