"""Where validation lies, and a warning where it holds too little of a class to rank epochs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.datasets import ImagePair, find_training_data
from engine.progress import RecordingReporter
from engine.training import train
from engine.training.config import TrainConfig
from engine.training.holdout import scarce_classes, split_validation
from tests.rasters import ONE_TINY_EPOCH, write_training_set


def _pairs(config: TrainConfig) -> list[ImagePair]:
    return find_training_data(config.images, config.masks, RecordingReporter())


def _scene(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = (mask[None] * 100 + np.random.default_rng(0).integers(0, 50, (1, *mask.shape))).astype(np.uint16)
    return image, mask.astype(np.uint8)


def test_one_images_strip_lies_where_asked_and_names_a_class_it_lacks(tmp_path: Path) -> None:
    # A tall scene whose rare class covers one part of its left side, as clouds over one part of a
    # Landsat scene: the usual bottom strip holds none of it, the left strip plenty.
    mask = np.zeros((120, 100), dtype=np.uint8)
    mask[30:90, 0:40] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    usual = split_validation([pair], 0.2, 16, seed=0)
    assert usual.description == "validation: the bottom 24 rows of scene.tif"
    assert scarce_classes(usual) == (1,)

    left = split_validation([pair], 0.2, 16, seed=0, side="left")
    (train,), (validation,) = left.train, left.validation
    assert (validation.col, validation.width, validation.height) == (0, 20, 120)
    assert (train.col, train.width) == (20 + 16 // 4, 100 - 20 - 16 // 4)
    assert left.description == "validation: the left 20 columns of scene.tif"
    assert scarce_classes(left) == ()
    assert split_validation([pair], 0.2, 16, seed=0, side="top").validation[0].row == 0


def test_a_strip_with_a_fair_share_of_every_class_is_not_flagged(tmp_path: Path) -> None:
    # The bottom strip holds the rare class at about half its share of the whole: enough.
    mask = np.zeros((100, 80), dtype=np.uint8)
    mask[0:20, 0:8] = 1
    mask[20:80, 0:4] = 1
    mask[80:100, 0:2] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    assert scarce_classes(split_validation([pair], 0.2, 16, seed=0)) == ()


def test_held_out_images_without_the_rare_class_are_flagged(tmp_path: Path) -> None:
    plain = np.zeros((48, 48), dtype=np.uint8)
    rare = plain.copy()
    rare[8:20, 8:20] = 1
    scenes = {f"plain{i}": _scene(plain) for i in range(6)} | {f"rare{i}": _scene(rare) for i in range(4)}
    pairs = _pairs(write_training_set(tmp_path, scenes))
    for seed in range(8):
        split = split_validation(pairs, 0.2, 16, seed)
        held = [region.pair.image.path.stem for region in split.validation]
        assert len(held) == 2
        assert (scarce_classes(split) == (1,)) is not any(name.startswith("rare") for name in held), held


def test_the_warning_names_the_class_validation_lacks(tmp_path: Path) -> None:
    mask = np.zeros((96, 96), dtype=np.uint8)
    mask[40:56, 40:56] = 1
    scene = {"scene": _scene(mask)}
    config = write_training_set(
        tmp_path, scene, class_names=["ground", "pond"], base_width=4, pixel_width=0, **ONE_TINY_EPOCH
    )
    reporter = RecordingReporter()
    train(config, reporter)
    (warning,) = [text for text in reporter.warnings() if "little or none of" in text]
    assert "the bottom 19 rows of scene.tif" in warning and "little or none of 'pond'" in warning
    assert "--val-side" in warning


@pytest.mark.parametrize("side", ["end", "bottom", "right", "top", "left"])
def test_every_side_keeps_training_and_validation_apart(tmp_path: Path, side: str) -> None:
    mask = np.zeros((80, 72), dtype=np.uint8)
    mask[:, :8] = 1
    (pair,) = _pairs(write_training_set(tmp_path, {"scene": _scene(mask)}))
    split = split_validation([pair], 0.25, 16, seed=0, side=side)
    (train,), (validation,) = split.train, split.validation

    def overlap(start: int, size: int, other_start: int, other_size: int) -> bool:
        return start < other_start + other_size and other_start < start + size

    rows = overlap(train.row, train.height, validation.row, validation.height)
    assert not (rows and overlap(train.col, train.width, validation.col, validation.width))
    assert train.area + validation.area < 80 * 72
