"""Pairing, checking and lazily sampling training data (engine.datasets), on real GeoTIFFs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.datasets import (
    IGNORE_INDEX,
    describe_mask_values,
    find_training_data,
    select_bands,
)
from engine.errors import BandMismatchError, DatasetError, RasterError
from engine.patches import GridPatches, PatchReader, RandomPatches, default_patches_per_epoch, make_loader
from engine.progress import RecordingReporter
from engine.rasters.normalize import Normalization
from engine.training.holdout import split_validation
from tests.rasters import write_raster


def identity(bands: int) -> Normalization:
    return Normalization("standard", [0.0] * bands, [1.0] * bands, False, [])


def classes(height: int = 64, width: int = 64) -> np.ndarray:
    """A mask with four classes in an asymmetric layout, so any flip or turn changes it."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[: height // 3, :] = 1
    mask[:, : width // 5] = 2
    mask[height // 2 :, width // 2 :] = 3
    return mask


def image_from(mask: np.ndarray, bands: int = 3) -> np.ndarray:
    """Band 1 equals the class id plus one, so a patch's target can be checked against its image."""
    data = np.stack([mask.astype(np.uint16) + 1] + [np.full(mask.shape, 7, np.uint16)] * (bands - 1))
    return data


def write_pair(folder: Path, name: str, mask: np.ndarray, **mask_options) -> tuple[Path, Path]:
    image = write_raster(folder / "images" / f"{name}.tif", image_from(mask))
    labels = write_raster(folder / "masks" / f"{name}.tif", mask[None], **mask_options)
    return image, labels


def test_pairs_by_stem_in_a_masks_folder(scene_dir: Path) -> None:
    pairs = find_training_data(
        [scene_dir / "train" / "images"], [scene_dir / "train" / "masks"], RecordingReporter()
    )
    assert [pair.image.path.name for pair in pairs] == ["scene0.tif", "scene1.tif", "scene2.tif"]
    for pair in pairs:
        assert pair.mask is not None
        assert pair.mask.raster.path.name == pair.image.path.name
        assert set(pair.mask.class_pixels) == {0, 1, 2, 3}
        assert not pair.mask.binary


def test_pairs_mask_suffix_in_the_same_folder(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_raster(tmp_path / f"{name}.tif", image_from(classes()))
        write_raster(tmp_path / f"{name}_mask.tif", classes()[None])
    pairs = find_training_data([tmp_path], [tmp_path], RecordingReporter())
    assert [(p.image.path.name, p.mask.raster.path.name) for p in pairs] == [
        ("a.tif", "a_mask.tif"),
        ("b.tif", "b_mask.tif"),
    ]


def test_binary_255_mask_reads_as_class_one(tmp_path: Path) -> None:
    mask = np.where(classes() == 3, 255, 0).astype(np.uint8)
    write_pair(tmp_path, "a", mask)
    (pair,) = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    assert pair.mask.binary
    assert pair.mask.class_pixels == {0: int((mask == 0).sum()), 1: int((mask == 255).sum())}
    reader = PatchReader([1, 2, 3], identity(3), 64)
    patch = reader.read(split_validation([pair], 0.2, 64, 0).train[0], 0, 0)
    assert set(np.unique(patch["target"][patch["valid"]])) == {0, 1}


def test_255_as_mask_nodata_is_ignored_and_a_single_class_warns(tmp_path: Path) -> None:
    mask = np.where(classes() == 3, 255, 0).astype(np.uint8)
    write_pair(tmp_path, "a", mask, nodata=255)
    reporter = RecordingReporter()
    (pair,) = find_training_data([tmp_path / "images"], [tmp_path / "masks"], reporter)
    assert not pair.mask.binary
    assert pair.mask.class_pixels == {0: int((mask == 0).sum())}
    (warning,) = reporter.warnings()
    assert "a.tif" in warning and "single class" in warning
    patch = PatchReader([1], identity(1), 64).read(split_validation([pair], 0.2, 64, 0).train[0], 0, 0)
    assert (patch["target"][mask[:64] == 255] == IGNORE_INDEX).all()
    assert not patch["valid"][mask[:64] == 255].any()


@pytest.mark.parametrize(
    ("mask", "options", "problem"),
    [
        (classes(32, 64), {}, "size 64×32 instead of 64×64"),
        (classes(), {"crs": "EPSG:4326"}, "CRS EPSG:4326 instead of EPSG:32618"),
        (classes(), {"pixel": 2.0}, "georeferencing"),
    ],
)
def test_mask_not_on_the_image_grid_names_both_files(
    tmp_path: Path, mask: np.ndarray, options: dict, problem: str
) -> None:
    image = write_raster(tmp_path / "images" / "a.tif", image_from(classes()))
    labels = write_raster(tmp_path / "masks" / "a.tif", mask[None], **options)
    with pytest.raises(DatasetError) as error:
        find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    assert str(image) in str(error.value) and str(labels) in str(error.value)
    assert problem in str(error.value)


def test_image_without_mask(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", classes())
    write_raster(tmp_path / "images" / "b.tif", image_from(classes()))
    with pytest.raises(DatasetError, match=r"b\.tif: no mask found"):
        find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())


def test_mask_value_that_is_no_class_id(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", classes().astype(np.uint16) * 100)
    with pytest.raises(DatasetError, match="holds the value 300"):
        find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())


def test_images_with_different_band_counts_name_the_odd_one(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_raster(tmp_path / f"{name}.tif", image_from(classes(), bands=3))
    odd = write_raster(tmp_path / "c.tif", image_from(classes(), bands=4))
    with pytest.raises(DatasetError, match=re.escape(f"{odd} has 4 band")):
        find_training_data([tmp_path], None, RecordingReporter())


def test_unreadable_inputs_raise_raster_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RasterError, match=r"No rasters \(\.bil/.*\.tif/\.tiff/\.vrt\) found"):
        find_training_data([empty], None, RecordingReporter())
    text = tmp_path / "text" / "notes.tif"
    text.parent.mkdir()
    text.write_text("not a raster")
    with pytest.raises(RasterError, match=r"notes\.tif"):
        find_training_data([text], None, RecordingReporter())
    with pytest.raises(RasterError, match="truncated"):
        find_training_data([truncated_geotiff(tmp_path / "cut.tif")], None, RecordingReporter())


def truncated_geotiff(path: Path) -> Path:
    """A tiled GeoTIFF cut in half, as an interrupted copy leaves it."""
    rng = np.random.default_rng(0)
    full = write_raster(path.with_suffix(".full.tif"), rng.integers(0, 60000, (3, 256, 256), dtype=np.uint16))
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return path


def test_bands_out_of_range(scene_dir: Path) -> None:
    pairs = find_training_data([scene_dir / "train" / "images"], None, RecordingReporter())
    assert select_bands(pairs, None) == [1, 2, 3, 4, 5]
    assert select_bands(pairs, [4, 2]) == [4, 2]
    with pytest.raises(BandMismatchError, match=r"band\(s\) 9 do not exist"):
        select_bands(pairs, [1, 9])


def test_split_by_image_holds_out_whole_images(scene_dir: Path) -> None:
    pairs = find_training_data([scene_dir / "train" / "images"], None, RecordingReporter())
    split = split_validation(pairs, 0.2, 64, seed=0)
    assert len(split.train) == 2 and len(split.validation) == 1
    names = {region.pair.image.path for region in split.train}
    assert split.validation[0].pair.image.path not in names
    assert split.validation[0].area == 256 * 256


def test_single_image_split_never_lets_validation_pixels_into_training(tmp_path: Path) -> None:
    rows = np.repeat(np.arange(100, dtype=np.uint16)[:, None], 80, axis=1) + 1
    image = write_raster(tmp_path / "rows.tif", rows[None])
    (pair,) = find_training_data([image], None, RecordingReporter())
    split = split_validation([pair], 0.2, 32, seed=0)
    (train,), (validation,) = split.train, split.validation
    assert validation.row == 80 and validation.height == 20
    assert train.row + train.height + 32 // 4 == validation.row
    reader = PatchReader([1], identity(1), 32)
    patches = RandomPatches(reader, split.train, 64, seed=0, augment=True)
    seen = max(float(patches[i]["image"][0][patches[i]["valid"]].max()) for i in range(len(patches)))
    assert seen <= train.row + train.height
    grid = GridPatches(reader, split.validation)
    for index in range(len(grid)):
        values = grid[index]["image"][0][grid[index]["valid"]]
        assert values.min() >= validation.row + 1


def test_random_patches_depend_only_on_seed_epoch_and_index(scene_dir: Path) -> None:
    pairs = find_training_data(
        [scene_dir / "train" / "images"], [scene_dir / "train" / "masks"], RecordingReporter()
    )
    regions = split_validation(pairs, 0.2, 64, 0).train
    patches = RandomPatches(PatchReader([1, 2, 3, 4, 5], identity(5), 64), regions, 8, seed=3, augment=True)
    first = [patches[i]["image"] for i in range(8)]
    again = RandomPatches(PatchReader([1, 2, 3, 4, 5], identity(5), 64), regions, 8, seed=3, augment=True)
    assert all(torch.equal(a, again[i]["image"]) for i, a in enumerate(first))
    patches.set_epoch(1)
    assert not any(torch.equal(a, patches[i]["image"]) for i, a in enumerate(first))


def test_mostly_nodata_windows_are_skipped(tmp_path: Path) -> None:
    data = np.full((1, 64, 160), 500, dtype=np.uint16)
    data[:, :, :96] = 0
    image = write_raster(tmp_path / "collar.tif", data, nodata=0)
    (pair,) = find_training_data([image], None, RecordingReporter())
    regions = split_validation([pair, pair], 0.5, 32, 0).train
    patches = RandomPatches(PatchReader([1], identity(1), 32), regions, 64, seed=0, augment=False)
    valid_fractions = np.array([float(patches[i]["valid"].float().mean()) for i in range(64)])
    # Uniform windows would be half nodata on average; the sampler retries bad ones.
    assert (valid_fractions >= 0.5).mean() > 0.9
    assert valid_fractions.mean() > 0.75


def test_augmentation_moves_image_and_target_together(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", classes(96, 96))
    pairs = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    region = split_validation(pairs, 0.2, 32, 0).train
    plain = RandomPatches(PatchReader([1, 2, 3], identity(3), 32), region, 16, seed=1, augment=False)
    augmented = RandomPatches(PatchReader([1, 2, 3], identity(3), 32), region, 16, seed=1, augment=True)
    changed = 0
    for index in range(16):
        patch = augmented[index]
        assert torch.equal(patch["image"][0].long() - 1, patch["target"])
        changed += not torch.equal(patch["target"], plain[index]["target"])
    assert changed >= 8


def test_small_raster_is_padded_and_the_padding_is_invalid(tmp_path: Path) -> None:
    write_pair(tmp_path, "tiny", classes(20, 30))
    (pair,) = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    reader = PatchReader([1, 2, 3], identity(3), 32)
    whole = split_validation([pair, pair], 0.5, 32, 0).train[0]
    patch = RandomPatches(reader, [whole], 1, seed=0, augment=False)[0]
    assert patch["image"].shape == (3, 32, 32)
    assert (
        patch["valid"][:20, :30].all()
        and not patch["valid"][20:, :].any()
        and not patch["valid"][:, 30:].any()
    )
    assert (patch["target"][20:, :] == IGNORE_INDEX).all()
    assert torch.equal(patch["image"][0, 20, :30], patch["image"][0, 18, :30])


def test_validation_grid_covers_the_region_edge_to_edge(scene_dir: Path) -> None:
    pairs = find_training_data([scene_dir / "holdout" / "images"], None, RecordingReporter())
    region = split_validation(pairs, 0.45, 64, 0).validation[0]
    grid = GridPatches(PatchReader([1], identity(1), 64), [region])
    covered = np.zeros((256, 256), dtype=bool)
    for _, row, col in grid.windows:
        covered[row : row + 64, col : col + 64] = True
    assert covered[region.row : region.row + region.height, :].all()
    assert not covered[: region.row].any()


def test_worker_processes_load_the_same_batches(scene_dir: Path) -> None:
    pairs = find_training_data(
        [scene_dir / "train" / "images"], [scene_dir / "train" / "masks"], RecordingReporter()
    )
    regions = split_validation(pairs, 0.2, 32, 0).train
    reader = PatchReader([1, 2, 3, 4, 5], identity(5), 32)
    patches = RandomPatches(reader, regions, 8, seed=0, augment=True)
    single = next(iter(make_loader(patches, 8, 0, False)))
    parallel = next(iter(make_loader(patches, 8, 1, False)))
    reader.close()
    assert torch.equal(single["image"], parallel["image"])
    assert torch.equal(single["target"], parallel["target"])


def test_default_patches_per_epoch_scales_with_area_within_bounds(scene_dir: Path) -> None:
    pairs = find_training_data([scene_dir / "train" / "images"], None, RecordingReporter())
    regions = split_validation(pairs, 0.2, 64, 0).train
    assert default_patches_per_epoch(regions, 64, 4) == 2 * 2 * 256 * 256 // (64 * 64)
    assert default_patches_per_epoch(regions[:1], 256, 16) == 8 * 16
    assert default_patches_per_epoch(regions * 100, 16, 4) == 64 * 4


def test_a_0_255_mask_in_a_class_set_keeps_255_unlabelled(tmp_path: Path) -> None:
    """The 0/255 reading is decided for the set: one 0/255 mask among class masks is not binary."""
    write_pair(tmp_path, "a", classes())
    partial = np.where(classes() == 3, 255, 0).astype(np.uint8)
    write_pair(tmp_path, "b", partial)
    pairs = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    assert not any(pair.mask.binary for pair in pairs)
    assert pairs[1].mask.class_pixels == {0: int((partial == 0).sum())}
    assert describe_mask_values(pairs).startswith("class ids")


def test_an_all_foreground_mask_in_a_binary_set_is_class_one(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", np.where(classes() == 3, 255, 0).astype(np.uint8))
    write_pair(tmp_path, "b", np.full((64, 64), 255, np.uint8))
    pairs = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter())
    assert all(pair.mask.binary for pair in pairs)
    assert pairs[1].mask.class_pixels == {1: 64 * 64}
    assert describe_mask_values(pairs).startswith("binary")


def test_mask_values_option_overrides_the_set_rule(tmp_path: Path) -> None:
    write_pair(tmp_path, "a", np.where(classes() == 3, 255, 0).astype(np.uint8))
    (pair,) = find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter(), "classes")
    assert not pair.mask.binary and set(pair.mask.class_pixels) == {0}
    write_pair(tmp_path, "b", classes())
    with pytest.raises(DatasetError, match=r"b\.tif holds the value 1, but binary masks hold only 0 and 255"):
        find_training_data([tmp_path / "images"], [tmp_path / "masks"], RecordingReporter(), "binary")
