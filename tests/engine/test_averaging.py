"""The best epochs a run averages: which it keeps, their mean, and how they survive a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from engine.models.file import load_checkpoint, save_checkpoint
from engine.training.averaging import BestEpochs


def weights(value: float) -> dict[str, torch.Tensor]:
    return {
        "conv.weight": torch.full((2, 2), float(value)),
        "norm.num_batches_tracked": torch.tensor(int(value)),
    }


def test_the_best_three_are_kept_best_first_and_ties_keep_the_earlier_epoch() -> None:
    best = BestEpochs(higher_is_better=True)
    offered = [
        best.offer(epoch, score, weights(epoch))
        for epoch, score in enumerate([0.5, 0.7, 0.6, 0.4, 0.8, 0.6], 1)
    ]
    assert offered == [True, True, True, False, True, False]
    assert [(entry.epoch, entry.metric) for entry in best.kept] == [(5, 0.8), (2, 0.7), (3, 0.6)]
    assert best.epochs == [2, 3, 5]


def test_a_loss_ranks_the_other_way() -> None:
    best = BestEpochs(higher_is_better=False, size=2)
    for epoch, loss in enumerate([0.9, 0.3, 0.5, 0.1], 1):
        best.offer(epoch, loss, weights(epoch))
    assert [entry.epoch for entry in best.kept] == [4, 2]


def test_the_average_is_the_mean_of_the_weights_and_counts_come_from_the_best() -> None:
    best = BestEpochs(higher_is_better=True)
    for epoch, score in [(1, 0.2), (4, 0.9), (6, 0.5)]:
        best.offer(epoch, score, weights(epoch))
    average = best.average()
    torch.testing.assert_close(average["conv.weight"], torch.full((2, 2), 11 / 3))
    assert int(average["norm.num_batches_tracked"]) == 4


def test_offered_weights_are_copied_not_shared_with_the_training_model() -> None:
    best = BestEpochs(higher_is_better=True)
    live = weights(1.0)
    best.offer(1, 0.5, live)
    live["conv.weight"].add_(10.0)  # the optimiser goes on changing the model in place
    torch.testing.assert_close(best.kept[0].model["conv.weight"], torch.ones(2, 2))


def test_the_checkpoint_restores_all_but_epochs_past_the_last_one_saved(tmp_path: Path) -> None:
    best = BestEpochs(higher_is_better=True)
    for epoch, score in [(1, 0.5), (2, 0.9), (3, 0.7)]:
        best.offer(epoch, score, weights(epoch))
    path = save_checkpoint(tmp_path / "best.ckpt", best.checkpoint())
    saved = load_checkpoint(path)
    assert saved["epoch"] == 2 and saved["metric"] == 0.9  # where earlier versions read the best epoch
    torch.testing.assert_close(saved["model"]["conv.weight"], torch.full((2, 2), 2.0))

    restored = BestEpochs(higher_is_better=True)
    restored.restore(saved, last_epoch=2)  # epoch 3 was written here, but its last.ckpt never was
    assert [(entry.epoch, entry.metric) for entry in restored.kept] == [(2, 0.9), (1, 0.5)]


def test_a_checkpoint_from_before_averaging_restores_its_best_epoch() -> None:
    restored = BestEpochs(higher_is_better=True)
    restored.restore({"epoch": 4, "metric": 0.6, "model": weights(4)}, last_epoch=7)
    assert restored.epochs == [4]
    torch.testing.assert_close(restored.average()["conv.weight"], torch.full((2, 2), 4.0))
