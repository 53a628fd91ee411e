"""Learning-rate schedules: one-cycle, or linear warm-up then cosine decay (the one a budget can stretch).

A budgeted run learns its length only after timing its first steps, and corrects it after every
epoch, so its schedule is a `WarmupCosine` whose ``total_steps`` can be changed while it runs; its
plain attributes go into the checkpoint with the scheduler's state.
"""

from __future__ import annotations

import math

import torch

from engine.training.config import TrainConfig

COSINE_FLOOR = 0.01


class WarmupCosine:
    """Learning-rate factor: linear warm-up, then cosine decay to 1 %; plain attributes, so it checkpoints."""

    def __init__(self, total_steps: int, warmup_steps: int) -> None:
        self.total_steps = total_steps
        self.warmup_steps = warmup_steps

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps)
        return COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int, stretchable: bool
) -> torch.optim.lr_scheduler.LRScheduler:
    """The configured schedule over ``total_steps``; a `WarmupCosine` whenever it must be ``stretchable``."""
    if config.schedule == "onecycle" and not stretchable:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, config.lr, total_steps=total_steps, pct_start=config.warmup_fraction
        )
    warmup = round(config.warmup_fraction * total_steps)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup))


def stretch(scheduler: torch.optim.lr_scheduler.LRScheduler, total_steps: int) -> None:
    """Makes a stretchable schedule end after ``total_steps`` steps (its warm-up is kept)."""
    assert isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR), "only a WarmupCosine stretches"
    for factor in scheduler.lr_lambdas:
        assert isinstance(factor, WarmupCosine)
        factor.total_steps = max(total_steps, factor.warmup_steps + 1)
