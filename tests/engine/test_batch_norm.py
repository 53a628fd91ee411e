"""Batch-norm statistics recomputed for the kept weights: the averaging itself, and real training runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

from engine.datasets import find_training_data
from engine.errors import JobCancelled
from engine.models.file import load_checkpoint, load_model
from engine.models.metadata import kept_validation, recomputed_note
from engine.progress import CancelToken, NullReporter, RecordingReporter
from engine.rasters.normalize import Normalization
from engine.training import train
from engine.training.batch_norm import MAX_REFRESH_PATCHES, refresh_batch_norms, refresh_patch_count
from engine.training.config import best_checkpoint_path_for, checkpoint_path_for
from engine.training.holdout import split_validation
from tests.engine.test_budget import TickingClock
from tests.engine.test_training import CancellingReporter, write_two_class_scenes


def test_the_statistics_become_the_plain_average_over_the_batches() -> None:
    norm = nn.BatchNorm2d(2)
    norm.running_mean.fill_(7.0)  # what a drifting exponential average might have left
    norm.running_var.fill_(0.01)
    model = nn.Sequential(norm)
    generator = torch.Generator().manual_seed(0)
    batches = [
        {"image": torch.randn(4, 2, 8, 8, generator=generator) * scale + shift}
        for scale, shift in ((1.0, 0.0), (2.0, 1.0), (0.5, -3.0))
    ]
    seen = refresh_batch_norms(model, batches, lambda batch: model(batch["image"]))

    assert seen == 12 and not model.training and norm.momentum == 0.1
    means = torch.stack([batch["image"].mean(dim=(0, 2, 3)) for batch in batches])
    variances = torch.stack([batch["image"].transpose(0, 1).flatten(1).var(dim=1) for batch in batches])
    torch.testing.assert_close(norm.running_mean, means.mean(dim=0))
    torch.testing.assert_close(norm.running_var, variances.mean(dim=0))


def test_a_network_without_batch_norms_is_left_alone() -> None:
    model = nn.Sequential(nn.Conv2d(1, 1, 1))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    assert (
        refresh_batch_norms(model, [{"image": torch.ones(2, 1, 4, 4)}], lambda batch: model(batch["image"]))
        == 0
    )
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


@pytest.mark.parametrize(("patch", "count"), [(32, MAX_REFRESH_PATCHES), (128, 256), (256, 64), (512, 64)])
def test_larger_patches_are_fewer(patch: int, count: int) -> None:
    assert refresh_patch_count(patch) == count


def test_the_kept_weights_carry_the_statistics_of_the_training_part(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), epochs=3)
    reporter = RecordingReporter()
    result = train(config, reporter)
    training = result.metadata.training
    kept = training["kept"]
    assert kept["epoch"] == training["best_epoch"] and kept["batch_norm_patches"] == MAX_REFRESH_PATCHES
    assert result.best_metric == training["best_metric"] == kept["metrics"]["mean_iou"]
    assert kept_validation(training) is kept
    assert kept["averaged_epochs"] == [1, 2, 3]  # three epochs: all of them are the best three
    before = result.history[kept["epoch"] - 1]["metrics"]["mean_iou"]
    assert recomputed_note(training) == (
        " (epochs 1, 2, 3 averaged, batch-norm statistics recomputed; "
        f"epoch {kept['epoch']} alone: {before:.4f})"
    )
    alone = {**training, "kept": {key: value for key, value in kept.items() if key != "averaged_epochs"}}
    assert recomputed_note(alone) == f" (batch-norm statistics recomputed; {before:.4f} before)"
    older = {key: value for key, value in training.items() if key != "kept"}
    assert recomputed_note(older) == "" and kept_validation(older) is result.history[kept["epoch"] - 1]
    assert any(
        "epochs 1, 2, 3 averaged, their batch-norm statistics recomputed over 256" in text
        for _, text in reporter.messages
    )

    model, metadata = load_model(result.model_path)
    saved = load_checkpoint(best_checkpoint_path_for(config))
    epochs = [saved["model"]] + [runner_up["model"] for runner_up in saved["runners_up"]]
    weights, statistics = model.state_dict(), ("running_mean", "running_var", "num_batches_tracked")
    for name in weights:
        if not name.endswith(statistics):
            torch.testing.assert_close(
                weights[name], torch.stack([epoch[name] for epoch in epochs]).mean(dim=0)
            )
    assert not torch.equal(weights["encoder.0.1.running_mean"], saved["model"]["encoder.0.1.running_mean"])

    # The first batch norm now describes the first convolution's outputs over the training part,
    # measured here independently of the patches it was averaged over.
    pairs = find_training_data(config.images, config.masks, NullReporter())
    split = split_validation(pairs, config.val_fraction, config.patch, config.seed, config.val_side)
    normalization = Normalization.from_dict(metadata.normalization)
    outputs = []
    for region in split.train:
        with rasterio.open(region.pair.image.path) as dataset:
            image = dataset.read(metadata.bands).astype(np.float32)
        part = normalization.apply(image)[
            :, region.row : region.row + region.height, region.col : region.col + region.width
        ]
        with torch.no_grad():
            outputs.append(model.encoder[0][0](torch.from_numpy(np.ascontiguousarray(part))[None]))
    pixels = torch.cat([output.flatten(2)[0] for output in outputs], dim=1)
    torch.testing.assert_close(model.encoder[0][1].running_mean, pixels.mean(dim=1), rtol=0.1, atol=0.05)


def test_a_cancel_after_the_last_epoch_says_so_and_the_resumed_run_averages_the_same_epochs(
    tmp_path: Path,
) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), epochs=4)
    cancel = CancelToken()
    reporter = CancellingReporter(cancel, lambda event: getattr(event, "stage", "") == "statistics")
    with pytest.raises(JobCancelled, match=r"cancelled while averaging its best epochs; .* holds epoch 4\."):
        train(config, reporter, cancel)
    assert not config.output.exists()
    [label] = {event.label for event in reporter.progress if event.stage == "statistics"}
    assert label.startswith("Epochs ") and label.endswith(" averaged")

    resumed = train(replace(config, resume=checkpoint_path_for(config)))
    kept = resumed.metadata.training["kept"]
    assert (
        resumed.epochs_run == 4 and f"Epochs {', '.join(map(str, kept['averaged_epochs']))} averaged" == label
    )
    assert len(kept["averaged_epochs"]) == 3 and kept["batch_norm_patches"] == MAX_REFRESH_PATCHES


def test_a_budget_with_time_left_for_it_ends_in_time(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=200)
    clock = TickingClock(0.25)
    result = train(config, clock=clock)
    assert abs(clock.now - 200) <= 0.1 * 200
    assert result.metadata.training["kept"]["batch_norm_patches"] >= 64


def test_a_budget_without_time_left_keeps_the_statistics_training_left(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=20)
    reporter = RecordingReporter()
    result = train(config, reporter, clock=TickingClock(0.25))
    assert result.metadata.training["kept"] is None
    assert any("too few to recompute the batch-norm statistics" in text for _, text in reporter.messages)
    best = load_checkpoint(best_checkpoint_path_for(config))["model"]
    weights = load_model(result.model_path)[0].state_dict()
    assert all(torch.equal(weights[name], best[name]) for name in best)
    assert np.isclose(result.best_metric, max(entry["metrics"]["mean_iou"] for entry in result.history))
