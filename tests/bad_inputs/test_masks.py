"""Masks that are not single-band class ids: refused before a job is queued, or read as documented.

The number of classes is the highest class id in the masks plus one (at least two); ids in between
that no mask holds become classes without examples. 255 (or the mask's nodata value) means
unlabelled, except in a mask holding only 0 and 255, which is read as a binary 0/1 mask.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.datasets import class_count, find_training_data
from engine.errors import DatasetError
from engine.jobs.runner import open_store, submit
from engine.jobs.specs import TrainSpec
from engine.progress import RecordingReporter
from engine.training import TrainConfig
from tests.bad_inputs.conftest import TINY_TRAINING, assert_refused_before_any_job, recorded_jobs
from tests.rasters import write_raster


def write_pair(folder: Path, mask: np.ndarray) -> tuple[Path, Path]:
    """A 4-band image and ``mask`` (rows, cols) or (bands, rows, cols) on the same grid."""
    rows, cols = mask.shape[-2:]
    image = np.random.default_rng(0).integers(500, 3000, size=(4, rows, cols), dtype=np.uint16)
    mask = mask if mask.ndim == 3 else mask[None]
    return (
        write_raster(folder / "images" / "field.tif", image),
        write_raster(folder / "masks" / "field.tif", mask),
    )


def halves(top: int, bottom: int = 0, dtype: str = "uint8") -> np.ndarray:
    mask = np.full((64, 64), bottom, dtype=dtype)
    mask[:32] = top
    return mask


REFUSED_MASKS = {
    "RGB colour mask": (
        np.stack([halves(200), halves(30), halves(10)]),
        [],
        True,
        ["3 bands instead of 1", "one band of class ids", "give each colour its class number"],
    ),
    "class id beyond the class names": (
        halves(7),
        ["--class-names", "soil,crop,water,road"],
        False,
        ["4 class name(s) given, but the masks hold class ids up to 7", "one name per class id"],
    ),
    "value that is no class id": (
        halves(300, dtype="uint16"),
        [],
        True,
        ["holds the value 300, which is no class id", "whole class ids 0–254"],
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_MASKS))
def test_masks_that_are_no_class_ids_are_refused_before_a_job(case, modelai, isolated_home, tmp_path):
    mask, options, names_the_mask, phrases = REFUSED_MASKS[case]
    image, labels = write_pair(tmp_path / "data", mask)
    model = tmp_path / "out" / "model.safetensors"
    result = modelai(
        "train", "segmentation", image.parent, labels.parent, "-o", model, *TINY_TRAINING, *options
    )
    named = [labels] if names_the_mask else []
    assert_refused_before_any_job(result, isolated_home, model.parent, *named, *phrases)

    names = options[1].split(",") if options else None
    config = TrainConfig(
        task="segmentation", images=[image.parent], masks=[labels.parent], output=model, class_names=names
    )
    with open_store() as store, pytest.raises(DatasetError, match=re.escape(phrases[0])):
        submit(store, TrainSpec(config))
    assert recorded_jobs(isolated_home) == [] and not model.exists()


@pytest.mark.parametrize(
    ("mask", "classes"),
    [(halves(255), [0, 1]), (halves(7), list(range(8)))],
    ids=["binary 0/255 mask", "class ids 0 and 7"],
)
def test_class_count_comes_from_the_highest_id(mask, classes, modelai, tmp_path):
    image, labels = write_pair(tmp_path / "data", mask)
    (pair,) = find_training_data([image], [labels], RecordingReporter())
    assert class_count([pair]) == len(classes)
    model = tmp_path / "model.safetensors"
    trained = modelai("train", "segmentation", image, labels, "-o", model, *TINY_TRAINING)
    assert trained.code == 0, trained.err
    shown = modelai("models", "show", model, "--json")
    assert [entry["id"] for entry in json.loads(shown.out)["classes"]] == classes
