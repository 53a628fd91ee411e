"""What the training loop and a task agree on: the task's side, the run's inputs and its result.

Kept apart from the loop (`engine.training.fit`) so that the tasks (segmentation, anomaly) and the
callers read the contract without the loop's machinery.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from engine.models.metadata import ClassInfo
from engine.patches import RandomPatches
from engine.training.config import TrainConfig


class Validator(Protocol):
    """Accumulates a task's validation metrics over batches."""

    def update(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> None: ...

    def result(self) -> tuple[dict[str, float], dict[str, Any]]:
        """Flat float metrics (for curves) and JSON-ready notes (kept in the history only)."""
        ...


class TrainingTask(Protocol):
    """What a task tells the loop: network, loss, metrics and which metric picks the best epoch."""

    architecture: str
    hyperparameters: dict[str, Any]
    classes: list[ClassInfo]
    monitor: str
    higher_is_better: bool

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def validator(self) -> Validator: ...

    def sample(
        self, output: torch.Tensor, batch: dict[str, torch.Tensor], index: int
    ) -> dict[str, np.ndarray]:
        """Small preview arrays of one validation patch for the live view."""
        ...

    def anomaly_section(self, best_entry: dict[str, Any] | None) -> dict[str, Any] | None:
        """The model file's ``anomaly`` metadata, from the best epoch's history entry."""
        ...


@dataclass
class FitInputs:
    """The model, data and settings of one run; ``checkpoint_extra`` is stored in every checkpoint.

    A time budget counts from ``started_at`` (a ``clock`` reading taken when the job began), so the
    data checks before the first batch are paid from it too. ``refresh_loader`` yields the uniform
    training patches the kept weights' batch-norm statistics are recomputed over at the end
    (`engine.training.batch_norm`); None keeps the statistics training left. ``budget_max_steps``
    caps a budgeted run's training steps (`engine.training.budget.cap_plan`).
    """

    model: nn.Module
    task: TrainingTask
    train_patches: RandomPatches
    train_loader: DataLoader
    val_loader: DataLoader
    device: torch.device
    config: TrainConfig
    checkpoint_extra: dict[str, Any]
    clock: Callable[[], float] = field(default=time.monotonic)
    started_at: float | None = None
    refresh_loader: DataLoader | None = None
    budget_max_steps: int | None = None


@dataclass
class FitResult:
    """What a finished (or early-stopped) run produced; ``best_model`` is a CPU state dict.

    ``kept`` is the validation of the weights the model keeps, the best epochs' average with its
    batch-norm statistics recomputed (a history entry's fields: ``epoch``, the best one, ``metrics``,
    the task's notes, ``averaged_epochs`` and ``batch_norm_patches``); None where the budget left no
    time for it, and the best epoch's weights and entry stand.
    """

    history: list[dict[str, Any]]
    best_model: dict[str, torch.Tensor]
    best_epoch: int
    best_metric: float | None
    epochs_run: int
    planned_epochs: int
    stopped_early: bool
    kept: dict[str, Any] | None = None
