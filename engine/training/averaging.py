"""The few best epochs' weights, whose average a run keeps (a uniform "checkpoint soup").

On a small scene the validation score of single epochs swings while the learning rate is high, and
which of the best few does best on unseen ground is chance. The average of the three best epochs'
weights, with batch-norm statistics recomputed for it (`engine.training.batch_norm`), scored above
the best epoch alone on unseen ground in 8 of 10 runs on the SpaceNet building and Landsat cloud
tasks (building mean 0.451 -> 0.473 at 5 minutes; ``docs/training_recipe.md``, "The three best
epochs, averaged"). Epochs of one run stay in one basin of the loss, so their average is a network
too; its batch-norm statistics are not the average of theirs, hence the recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

AVERAGED_EPOCHS = 3


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: value.detach().to("cpu", copy=True) for name, value in state.items()}


@dataclass
class ScoredWeights:
    epoch: int
    metric: float
    model: dict[str, torch.Tensor]


class BestEpochs:
    """The ``size`` best-scored epochs' weights (CPU copies), the best first; ``best.ckpt`` holds them."""

    def __init__(self, higher_is_better: bool, size: int = AVERAGED_EPOCHS) -> None:
        self.higher_is_better = higher_is_better
        self.size = size
        self.kept: list[ScoredWeights] = []

    def ranks(self, metric: float) -> bool:
        """Whether an epoch scoring ``metric`` belongs among the kept ones."""
        if len(self.kept) < self.size:
            return True
        worst = self.kept[-1].metric
        return metric > worst if self.higher_is_better else metric < worst

    def offer(self, epoch: int, metric: float, model: dict[str, torch.Tensor]) -> bool:
        """Keeps a copy of ``model`` if it ranks; returns whether it did (ties keep the earlier epoch)."""
        if not self.ranks(metric):
            return False
        self.kept.append(ScoredWeights(epoch, metric, cpu_copy(model)))
        sign = -1.0 if self.higher_is_better else 1.0
        self.kept.sort(key=lambda entry: (sign * entry.metric, entry.epoch))
        del self.kept[self.size :]
        return True

    @property
    def epochs(self) -> list[int]:
        return sorted(entry.epoch for entry in self.kept)

    def average(self) -> dict[str, torch.Tensor]:
        """The kept weights' mean; integer buffers (batch counts) are the best epoch's."""
        states = [entry.model for entry in self.kept]
        return {
            name: torch.stack([s[name] for s in states]).mean(dim=0) if value.is_floating_point() else value
            for name, value in states[0].items()
        }

    def checkpoint(self) -> dict[str, Any]:
        """The best epoch as ``best.ckpt`` has always held it, and the runners-up beside it."""
        best, *others = self.kept
        return {**vars(best), "runners_up": [dict(vars(other)) for other in others]}

    def restore(self, checkpoint: dict[str, Any], last_epoch: int) -> None:
        """Takes a `checkpoint` back, less any runner-up after ``last_epoch`` (saved just before a crash).

        A ``best.ckpt`` written before the best epochs were averaged holds the best one alone.
        """
        self.kept = []
        for entry in [checkpoint, *checkpoint.get("runners_up", [])]:
            if int(entry["epoch"]) <= last_epoch:
                self.offer(int(entry["epoch"]), float(entry["metric"]), entry["model"])
