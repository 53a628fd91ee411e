"""The per-pixel start: a U-Net that begins from a per-pixel classifier fitted on sampled pixels."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.datasets import IGNORE_INDEX
from engine.models import build_model
from engine.models.file import load_model
from engine.progress import RecordingReporter
from engine.training import TrainConfig, train
from engine.training.config import ADDED_LATER, RUNTIME_SETTINGS, settings_hash
from engine.training.pixel_start import (
    MIN_START_IOU,
    MIN_START_SHARE,
    fit_pixel_path,
    silence_pixel_path,
    start_from_class_shares,
)
from tests.rasters import ONE_TINY_EPOCH, write_training_set

SIDE = 96
CPU = torch.device("cpu")
NAMES = ["background", "bright"]
SMALL_UNET = {"in_channels": 3, "num_classes": 2, "base_width": 8, "depth": 2}


def write_spectral_scenes(folder: Path) -> TrainConfig:
    """Class 1 wherever band 1 is brighter than band 2: a rule of each pixel's spectrum alone,
    with no shape or neighbourhood to learn (the pixels are independent noise)."""
    rng = np.random.default_rng(3)
    scenes = {}
    for name in ("first", "second"):
        image = rng.integers(1000, 3000, (3, SIDE, SIDE)).astype(np.uint16)
        scenes[name] = (image, (image[0].astype(int) > image[1].astype(int) + 400).astype(np.uint8))
    return write_training_set(
        folder,
        scenes,
        base_width=8,
        pixel_width=16,
        **ONE_TINY_EPOCH,
    )


def test_one_step_after_the_pixel_start_already_classifies_a_spectral_scene(tmp_path: Path) -> None:
    config = write_spectral_scenes(tmp_path)
    reporter = RecordingReporter()
    started = train(config, reporter)
    unstarted = train(replace(config, pixel_width=0, output=tmp_path / "plain.safetensors"))
    assert any(text.startswith("Per-pixel start: fitted on") for _, text in reporter.messages)
    # One training step: the plain U-Net has learnt nothing yet, the started one answers like a
    # per-pixel classifier fitted on the rule.
    assert unstarted.best_metric < 0.6 < 0.85 < started.best_metric
    model, metadata = load_model(started.model_path)
    assert metadata.hyperparameters["pixel_width"] == 16
    assert "pixel_width" not in load_model(unstarted.model_path)[1].hyperparameters
    assert model.pixel is not None


def spectral_patches(rng: np.random.Generator, count: int) -> list[dict[str, torch.Tensor]]:
    """Standardised 3-band patches whose class is band 1 > band 2, a few pixels unlabelled."""
    patches = []
    for _ in range(count):
        image = torch.from_numpy(rng.standard_normal((3, 32, 32)).astype(np.float32))
        target = (image[0] > image[1]).to(torch.uint8)
        target[:2] = IGNORE_INDEX
        patches.append({"image": image, "target": target})
    return patches


def test_the_network_starts_as_the_fitted_pixel_classifier() -> None:
    torch.manual_seed(0)
    model = build_model("unet", {**SMALL_UNET, "pixel_width": 8})
    rng = np.random.default_rng(0)
    fit = fit_pixel_path(model, spectral_patches(rng, 4), CPU, None, 0, NAMES)
    assert fit is not None and fit.started
    assert fit.note.startswith("Per-pixel start: fitted on 3,840 labelled pixels of 4 patches")
    assert not model.head.weight.any() and not model.head.bias.any()
    (unseen,) = spectral_patches(rng, 1)
    model.eval()
    with torch.no_grad():
        logits = model(unseen["image"][None])[0]
        assert torch.equal(logits, model.pixel(unseen["image"][None])[0])
    accuracy = (logits.argmax(0) == (unseen["image"][0] > unseen["image"][1])).float().mean()
    assert accuracy > 0.95


def test_no_labelled_pixel_leaves_the_network_as_it_was() -> None:
    model = build_model("unet", {**SMALL_UNET, "pixel_width": 8})
    head = model.head.weight.detach().clone()
    unlabelled = [
        {"image": torch.zeros(3, 32, 32), "target": torch.full((32, 32), IGNORE_INDEX, dtype=torch.uint8)}
    ]
    assert fit_pixel_path(model, unlabelled, CPU, None, 0, NAMES) is None
    assert torch.equal(model.head.weight, head)
    plain = build_model("unet", SMALL_UNET)
    assert fit_pixel_path(plain, unlabelled, CPU, None, 0, NAMES) is None


def test_classes_the_bands_alone_cannot_find_get_no_per_pixel_start() -> None:
    """Class 1 is a shape (a square), not a colour: the U-Net starts from scratch, and the path
    only adds each class's share of the sampled pixels (a prior) until it learns along with it."""
    rng = np.random.default_rng(0)
    patches = spectral_patches(rng, 4)
    for patch in patches:
        patch["target"] = torch.zeros(32, 32, dtype=torch.uint8)
        patch["target"][8:24, 8:24] = 1
    model = build_model("unet", {**SMALL_UNET, "pixel_width": 8})
    head = model.head.weight.detach().clone()
    fit = fit_pixel_path(model, patches, CPU, None, 0, ["ground", "roof"])
    assert fit is not None and not fit.started
    assert fit.note.startswith("No per-pixel start: the bands alone do not find every class")
    assert float(re.search(r"roof (\d\.\d\d)", fit.note).group(1)) < MIN_START_IOU, fit.note
    assert torch.equal(model.head.weight, head)
    answer = model.pixel(patches[0]["image"][None])[0]
    shares = torch.tensor([0.75, 0.25])  # the square covers a quarter of every patch
    assert torch.allclose(answer, shares.log()[:, None, None].expand_as(answer))


def test_a_class_the_sampled_pixels_miss_starts_within_reach() -> None:
    model = build_model("unet", {**SMALL_UNET, "num_classes": 3, "pixel_width": 8})
    start_from_class_shares(model, torch.tensor([0] * 90 + [1] * 10))
    assert torch.allclose(model.pixel[-1].bias, torch.tensor([0.9, 0.1, MIN_START_SHARE]).log())
    assert not model.pixel[-1].weight.any()


def test_a_fine_tuned_model_keeps_its_answer_until_its_new_pixel_path_learns() -> None:
    """Starting from a model without a per-pixel path: the new path adds nothing at first."""
    model = build_model("unet", {**SMALL_UNET, "pixel_width": 8})
    silence_pixel_path(model)
    images = torch.randn(2, 3, 32, 32)
    assert not model.pixel(images).any()


@pytest.mark.parametrize("width", [0, 32])
def test_a_configuration_stored_before_the_pixel_path_existed_reads_without_one(width: int) -> None:
    """Checkpoints and jobs written by earlier versions hold no ``pixel_width`` (nor the later
    ``val_side``): they had no such path and held out the end strip, so they must resume and rerun
    that way, under the fingerprint they were written with."""
    stored = TrainConfig(task="segmentation", images=[Path("a.tif")], masks=[Path("m.tif")], output=Path("o"))
    earlier = {name: value for name, value in stored.to_dict().items() if name not in ADDED_LATER}
    read = TrainConfig.from_dict(earlier)
    assert (read.pixel_width, read.val_side) == (0, "end")
    # The fingerprint as versions without the settings computed it.
    learning = {name: value for name, value in earlier.items() if name not in (*RUNTIME_SETTINGS, "epochs")}
    written = hashlib.sha256(json.dumps(learning, sort_keys=True).encode()).hexdigest()[:16]
    assert settings_hash(read) == written
    assert (settings_hash(replace(read, pixel_width=width)) == written) is (width == 0)
    assert settings_hash(replace(read, val_side="top")) != written
