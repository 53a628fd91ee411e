"""The tile grid covers any raster, its weights blend to exactly one, and padding reflects."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.inference.grid import StripBlender, TileGrid, blend_ramp, fitted_tile, pad_to_tile, tile_starts


def weight_sum(grid: TileGrid) -> np.ndarray:
    """Sum of every tile's weights at every raster pixel, accumulated as inference does."""
    total = np.zeros((grid.height, grid.width), dtype=np.float64)
    for strip in grid.strips():
        for tile in strip:
            weights = grid.weights(tile)
            assert weights.shape == (grid.tile_height, grid.tile_width)
            assert np.all(weights[tile.height :, :] == 0) and np.all(weights[:, tile.width :] == 0)
            inside = weights[: tile.height, : tile.width]
            assert np.all(inside > 0), "a raster pixel got zero weight from a tile covering it"
            total[tile.rows, tile.cols] += inside
    return total


@settings(max_examples=60, deadline=None)
@given(
    height=st.integers(1, 700),
    width=st.integers(1, 700),
    tile_units=st.integers(1, 8),
    overlap_fraction=st.floats(0, 0.5),
    mode=st.sampled_from(["hann", "flat"]),
)
def test_weights_of_all_tiles_sum_to_one_everywhere(height, width, tile_units, overlap_fraction, mode):
    tile = 32 * tile_units
    overlap = int(tile * overlap_fraction)
    grid = TileGrid(height, width, tile, overlap, size_multiple=16, weight_mode=mode)
    np.testing.assert_allclose(weight_sum(grid), 1.0, atol=1e-5)
    assert grid.tile_height % 16 == 0 and grid.tile_width % 16 == 0
    assert grid.tile_height <= tile and grid.tile_width <= tile


@settings(max_examples=80, deadline=None)
@given(length=st.integers(1, 3000), tile=st.integers(16, 600), overlap_fraction=st.floats(0, 0.5))
def test_starts_cover_the_axis_inside_the_raster_with_at_least_the_overlap(length, tile, overlap_fraction):
    overlap = int(tile * overlap_fraction)
    starts = tile_starts(length, tile, overlap)
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    if length <= tile:
        assert starts == [0]
        return
    assert starts[-1] == length - tile, "the last tile must end flush with the raster"
    for previous, following in itertools.pairwise(starts):
        assert following - previous <= tile - overlap, "neighbours must share at least the overlap"


@settings(max_examples=80, deadline=None)
@given(length=st.integers(1, 5000), units=st.integers(2, 40), overlap_fraction=st.floats(0, 0.5))
def test_fitted_tiles_are_never_more_and_never_larger(length, units, overlap_fraction):
    tile = 16 * units
    overlap = int(tile * overlap_fraction)
    fitted = fitted_tile(length, tile, overlap, 16)
    assert fitted % 16 == 0 and fitted <= tile
    assert len(tile_starts(length, fitted, overlap)) == len(tile_starts(length, tile, overlap))
    assert fitted_tile(2000, 512, 64, 16) == 464


def test_finished_rows_partition_the_raster_and_no_later_strip_touches_them():
    grid = TileGrid(1000, 300, tile=256, overlap=64)
    finished = [grid.finished_rows(index) for index in range(len(grid.row_starts))]
    assert finished[0][0] == 0 and finished[-1][1] == 1000
    for (_, stop), (start, _) in itertools.pairwise(finished):
        assert stop == start
    for index, (_, stop) in enumerate(finished):
        later_rows = [tile.row_off for strip in list(grid.strips())[index + 1 :] for tile in strip]
        assert all(row >= stop for row in later_rows)
        assert stop - grid.row_starts[index] <= grid.strip_rows


@pytest.mark.parametrize(
    ("height", "width", "expected_tile"),
    [
        (1, 900, (16, 256)),  # a one-row strip: the tile is the row rounded up to the network's multiple
        (900, 1, (256, 16)),
        (40, 30, (48, 32)),  # smaller than one tile
        (513, 700, (208, 256)),  # not a multiple of the tile: tiles shrink to cover it evenly
    ],
)
def test_tile_shape_and_coverage_for_awkward_sizes(height, width, expected_tile):
    grid = TileGrid(height, width, tile=256, overlap=32, size_multiple=16)
    assert (grid.tile_height, grid.tile_width) == expected_tile
    np.testing.assert_allclose(weight_sum(grid), 1.0, atol=1e-5)
    covered = np.zeros((height, width), dtype=bool)
    for strip in grid.strips():
        for tile in strip:
            assert tile.row_off + tile.height <= height and tile.col_off + tile.width <= width
            covered[tile.rows, tile.cols] = True
    assert covered.all()
    assert len(grid) == len(grid.row_starts) * len(grid.col_starts)


def test_hann_ramps_of_neighbours_sum_to_one_and_never_reach_zero():
    ramp = blend_ramp(64, 16, taper_start=True, taper_end=True, mode="hann")
    assert ramp.min() > 0 and ramp.max() == 1.0
    falling, rising = ramp[-16:], ramp[:16]
    np.testing.assert_allclose(falling + rising, 1.0, atol=1e-12)
    assert np.all(np.diff(rising) > 0), "the ramp must rise smoothly"
    untapered = blend_ramp(64, 16, taper_start=False, taper_end=False, mode="hann")
    assert np.all(untapered == 1.0), "a side at the raster's edge is not tapered"


def test_hann_weights_fall_towards_inner_tile_edges_while_flat_ones_do_not():
    hann = TileGrid(256, 256, tile=128, overlap=32, weight_mode="hann")
    flat = TileGrid(256, 256, tile=128, overlap=32, weight_mode="flat")
    first_hann, first_flat = hann.weights(hann.strip(0)[0]), flat.weights(flat.strip(0)[0])
    assert first_hann[0, 0] == pytest.approx(1.0), "a raster corner is covered by this tile alone"
    assert first_hann[50, hann.tile_width - 1] < 0.01, "the inner edge of a tile must barely count"
    assert set(np.unique(first_flat).round(6)) <= {1.0, 0.5, 0.25}


def test_pad_to_tile_reflects_and_repeats_single_rows():
    block = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    padded = pad_to_tile(block, 5, 6)
    assert padded.shape == (1, 5, 6)
    np.testing.assert_array_equal(padded[0, 3, :4], block[0, 1])
    np.testing.assert_array_equal(padded[0, :3, 4], block[0, :, 2])
    single_row = pad_to_tile(block[:, :1], 16, 4)
    assert np.all(single_row == block[:, :1])
    assert pad_to_tile(block, 3, 4) is block


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"height": 0, "width": 5, "tile": 64, "overlap": 8}, "nothing to tile"),
        ({"height": 5, "width": 5, "tile": 60, "overlap": 8, "size_multiple": 16}, "use 64"),
        ({"height": 5, "width": 5, "tile": 64, "overlap": 33}, "half the tile"),
        ({"height": 5, "width": 5, "tile": 64, "overlap": 8, "weight_mode": "gauss"}, "hann, flat"),
    ],
)
def test_impossible_grids_are_refused_with_the_fix(arguments, message):
    with pytest.raises(ValueError, match=message):
        TileGrid(**arguments)


@pytest.mark.parametrize("mode", ["hann", "flat"])
def test_strip_blender_releases_every_row_once_in_order_and_reproduces_smooth_fields(mode):
    """Tiles cut from one smooth field blend back into exactly that field, row chunk by row chunk."""
    height, width = 300, 170
    rows, cols = np.mgrid[0:height, 0:width]
    field = np.stack([np.sin(rows / 40.0) + cols / 100.0, np.full((height, width), 2.0)]).astype(np.float32)
    grid = TileGrid(height, width, tile=64, overlap=16, weight_mode=mode)
    blender = StripBlender(grid, channels=2, chunk_rows=50)
    released = np.full_like(field, np.nan)
    released_valid = np.zeros((height, width), dtype=bool)
    next_row = 0
    for strip in grid.strips():
        for tile in strip:
            values = pad_to_tile(field[:, tile.rows, tile.cols], grid.tile_height, grid.tile_width)
            nodata = tile.col_off == grid.col_starts[-1]
            blender.add(tile, None if nodata else values, np.full((tile.height, tile.width), not nodata))
        for row_off, values, valid in blender.finish_strip():
            assert row_off == next_row and len(valid) <= 50
            released[:, row_off : row_off + len(valid)] = values
            released_valid[row_off : row_off + len(valid)] = valid
            next_row += len(valid)
    assert next_row == height
    last = grid.col_starts[-1]
    np.testing.assert_allclose(released[:, :, :last], field[:, :, :last], atol=1e-5)
    assert np.array_equal(released_valid, cols < last), "only the last column of tiles is nodata"
    with pytest.raises(ValueError, match="strip 0 is open"):
        StripBlender(grid, channels=2).add(grid.strip(1)[0], None, np.ones((64, 64), dtype=bool))
