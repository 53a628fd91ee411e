"""Class-balanced patches, class weights and the in-memory raster cache, on rasters written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine.patches
from engine.datasets import Region, find_training_data
from engine.patches import PatchReader, RandomPatches
from engine.progress import NullReporter
from engine.rasters.normalize import Normalization
from engine.training.sampling import ClassFocus, class_census
from tests.rasters import write_raster

SIZE = 256


def rare_class_scene(folder: Path) -> list[Region]:
    """A 256x256 scene whose class 1 is one 12x12 square (0.2 % of the pixels) near a corner."""
    mask = np.zeros((1, SIZE, SIZE), dtype=np.uint8)
    mask[0, 200:212, 30:42] = 1
    image = np.random.default_rng(0).integers(100, 200, (2, SIZE, SIZE)).astype(np.uint16)
    write_raster(folder / "images" / "a.tif", image)
    write_raster(folder / "masks" / "a.tif", mask)
    (pair,) = find_training_data([folder / "images"], [folder / "masks"], NullReporter())
    return [Region(pair, 0, 0, SIZE, SIZE)]


def reader() -> PatchReader:
    return PatchReader([1, 2], Normalization("standard", [150.0, 150.0], [30.0, 30.0], False, []), 32)


def share_with_rare_class(patches: RandomPatches) -> float:
    return float(np.mean([bool((patches[i]["target"] == 1).any()) for i in range(len(patches))]))


def test_census_finds_the_rare_class_and_weights_it_up(tmp_path: Path) -> None:
    regions = rare_class_scene(tmp_path)
    census = class_census(reader(), regions, 2)
    assert census.pixels.tolist() == [SIZE * SIZE - 144, 144]
    rows, cols = census.cells[1][:, 1], census.cells[1][:, 2]
    assert rows.min() <= 200 < rows.max() + census.cell and cols.min() <= 30 < cols.max() + census.cell
    weights = census.loss_weights()
    assert weights[1] / weights[0] == pytest.approx(10.0)


def test_balanced_patches_see_a_rare_class_far_more_often(tmp_path: Path) -> None:
    regions = rare_class_scene(tmp_path)
    census = class_census(reader(), regions, 2)
    plain = RandomPatches(reader(), regions, 200, seed=1, augment=True)
    balanced = RandomPatches(
        reader(), regions, 200, seed=1, augment=True, focus=ClassFocus(census, regions, 32, 0.5)
    )
    assert share_with_rare_class(plain) < 0.1
    assert share_with_rare_class(balanced) > 0.2


def test_cached_patches_equal_patches_read_from_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    regions = rare_class_scene(tmp_path)
    cached = reader().read(regions[0], 190, 20)
    monkeypatch.setattr(engine.patches, "MEMORY_CACHE_BYTES", 0)
    uncached_reader = reader()
    from_disk = uncached_reader.read(regions[0], 190, 20)
    assert not uncached_reader._cache
    for name in ("image", "valid", "target"):
        np.testing.assert_array_equal(cached[name], from_disk[name])
