"""Validation holds out a part whose classes look like the whole's, so that it can rank epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.datasets import find_training_data
from engine.progress import RecordingReporter
from engine.training import train
from engine.training.config import TrainConfig
from engine.training.holdout import split_validation
from tests.rasters import ONE_TINY_EPOCH, write_training_set


def _pairs(config: TrainConfig) -> list:
    return find_training_data(config.images, config.masks, RecordingReporter())


def _scene(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = (mask[None] * 100 + np.random.default_rng(0).integers(0, 50, (1, *mask.shape))).astype(np.uint16)
    return image, mask.astype(np.uint8)


def test_one_images_strip_goes_where_the_rare_class_is_as_common_as_in_the_whole(tmp_path: Path) -> None:
    # A tall scene whose rare class covers one part of its left side, as clouds over one part of a
    # Landsat scene: the bottom strip (the earlier fixed choice) would hold none of it.
    mask = np.zeros((120, 100), dtype=np.uint8)
    mask[30:90, 0:40] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    split = split_validation([pair], 0.2, 16, seed=0)
    (train,), (validation,) = split.train, split.validation
    assert (validation.col, validation.width, validation.height) == (0, 20, 120)
    assert (train.col, train.width) == (20 + 16 // 4, 100 - 20 - 16 // 4)
    assert split.description == "validation: the left 20 columns of scene.tif"
    assert split.missing_classes == ()
    held = mask[:, :20]
    assert held.mean() > 0 and held.mean() >= mask.mean()

    fixed = split_validation([pair], 0.2, 16, seed=0, side="end")
    assert fixed.validation[0].row == 120 - 24 and not mask[96:].any()
    assert split_validation([pair], 0.2, 16, seed=0, side="top").validation[0].row == 0


def test_the_usual_strip_stays_while_it_holds_enough_of_every_class(tmp_path: Path) -> None:
    # The bottom strip holds the rare class at about half its share of the whole, the top strip at
    # exactly its share: half is enough to rank epochs, so the usual strip is kept.
    mask = np.zeros((100, 80), dtype=np.uint8)
    mask[0:20, 0:8] = 1
    mask[20:80, 0:4] = 1
    mask[80:100, 0:2] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    split = split_validation([pair], 0.2, 16, seed=0)
    assert split.description == "validation: the bottom 20 rows of scene.tif"


def test_several_images_hold_out_a_draw_that_holds_every_class(tmp_path: Path) -> None:
    plain = np.zeros((48, 48), dtype=np.uint8)
    rare = plain.copy()
    rare[8:20, 8:20] = 1
    scenes = {f"plain{i}": _scene(plain) for i in range(6)} | {f"rare{i}": _scene(rare) for i in range(4)}
    pairs = _pairs(write_training_set(tmp_path, scenes))
    for seed in range(4):
        split = split_validation(pairs, 0.2, 16, seed)
        held = sorted(region.pair.image.path.stem for region in split.validation)
        assert len(held) == 2 and any(name.startswith("rare") for name in held), held
        assert split.missing_classes == ()
    earlier = [split_validation(pairs, 0.2, 16, seed, side="end").validation for seed in range(8)]
    assert any(all(r.pair.image.path.stem.startswith("plain") for r in regions) for regions in earlier)


def test_a_class_no_strip_can_hold_is_named_in_a_warning(tmp_path: Path) -> None:
    mask = np.zeros((96, 96), dtype=np.uint8)
    mask[40:56, 40:56] = 1
    config = write_training_set(
        tmp_path,
        {"scene": _scene(mask)},
        class_names=["ground", "pond"],
        base_width=4,
        pixel_width=0,
        **ONE_TINY_EPOCH,
    )
    reporter = RecordingReporter()
    train(config, reporter)
    (warning,) = [text for text in reporter.warnings() if "validation part" in text]
    assert "holds no pixel of 'pond'" in warning and "scene.tif" in warning


@pytest.mark.parametrize("side", ["auto", "end", "bottom", "right", "top", "left"])
def test_every_side_keeps_training_and_validation_apart(tmp_path: Path, side: str) -> None:
    mask = np.zeros((80, 72), dtype=np.uint8)
    mask[:, :8] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    split = split_validation([pair], 0.25, 16, seed=0, side=side)
    (train,), (validation,) = split.train, split.validation
    rows = set(range(train.row, train.row + train.height)) & set(
        range(validation.row, validation.row + validation.height)
    )
    cols = set(range(train.col, train.col + train.width)) & set(
        range(validation.col, validation.col + validation.width)
    )
    assert not (rows and cols)
    assert train.area + validation.area < 80 * 72
