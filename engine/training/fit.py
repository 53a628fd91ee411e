"""The one training loop: epochs, mixed precision, schedule, early stopping, checkpoints, resume, cancel.

Tasks (segmentation, anomaly) plug in through `TrainingTask`: they supply the loss, the validation
metrics and which metric decides the best epoch; everything about running epochs lives here once.
After every epoch ``last.ckpt`` holds the complete state (weights, optimizer, schedule, loss scaler,
history, random number generators), so a resumed run continues exactly where the interrupted one
stopped, and a cancel at any batch leaves a checkpoint that loads.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.device import autocast_dtype, is_out_of_memory
from engine.errors import DatasetError, DeviceError, EngineError, JobCancelled, ModelFileError, OutputError
from engine.models.file import load_checkpoint, save_checkpoint
from engine.progress import CancelToken, EpochEvent, ProgressEvent, Reporter
from engine.training.averaging import BestEpochs, cpu_copy
from engine.training.batch_norm import MIN_REFRESH_PATCHES, batch_norms, refresh_batch_norms
from engine.training.budget import CALIBRATION_STEPS, MIN_EPOCHS, BudgetState, TimeBudget
from engine.training.config import best_checkpoint_path_for, checkpoint_path_for
from engine.training.contract import FitInputs, FitResult
from engine.training.schedule import make_scheduler, stretch

CHECKPOINT_FORMAT = "modelai-checkpoint"
# What a schedule's state says about how far it got; the rest (its plan) follows the current epochs.
SCHEDULE_PROGRESS = ("last_epoch", "_step_count", "_last_lr")
LOSS_SMOOTHING = 0.9


@dataclass
class _Validation:
    loss: float
    metrics: dict[str, float]
    notes: dict[str, Any]
    sample: dict[str, np.ndarray] | None


class _Loop:
    """The state of one run: built once, then restored from a checkpoint or started fresh."""

    def __init__(self, run: FitInputs, reporter: Reporter, cancel: CancelToken) -> None:
        self.run = run
        self.reporter = reporter
        self.cancel = cancel
        self.config = run.config
        self.device = run.device
        # Channels-last lets oneDNN (CPU) and cuDNN pick their fastest convolutions, as in prediction.
        self.model = run.model.to(run.device).to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=self.config.lr, weight_decay=self.config.weight_decay
        )
        self.preferred_steps = len(run.train_loader)
        self.budget = self._fresh_budget()
        # A budgeted run starts with a provisional length; its first plan sets the real one.
        self.planned_epochs = self.config.epochs if self.budget is None else MIN_EPOCHS
        self.scheduler = make_scheduler(
            self.optimizer, self.config, self.planned_epochs * self.preferred_steps, self.budget is not None
        )
        self.amp_dtype = autocast_dtype(run.device, self.config.precision)
        self.scaler = torch.amp.GradScaler(run.device.type, enabled=self.amp_dtype == torch.float16)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_epochs = BestEpochs(run.task.higher_is_better)
        self.last_path = checkpoint_path_for(self.config)
        self.best_path = best_checkpoint_path_for(self.config)

    def _fresh_budget(self) -> TimeBudget | None:
        if self.config.time_budget_s is None:
            return None
        clock = self.run.clock
        spent = 0.0 if self.run.started_at is None else clock() - self.run.started_at
        return TimeBudget(BudgetState(self.config.time_budget_s, spent_s=spent), clock)

    def restore(self, state: dict[str, Any], source: Path) -> None:
        """Continues from a ``last.ckpt`` and the ``best.ckpt`` beside it.

        The learning-rate schedule keeps its progress but is planned over this run's epochs, so a
        run resumed with more epochs stretches its schedule instead of running past its end.
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        progress = {name: state["scheduler"][name] for name in SCHEDULE_PROGRESS}
        self.scheduler.load_state_dict({**self.scheduler.state_dict(), **progress})
        if self.scaler.is_enabled() and state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        if self.budget is not None and state.get("budget"):
            self.budget = TimeBudget(BudgetState(**state["budget"]), self.run.clock)
            self.planned_epochs = max(self.budget.state.planned_epochs, self.epoch, 1)
        self.history = list(state["history"])
        recorded_best = int(state["best_epoch"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        if recorded_best:
            best = load_checkpoint(source.parent / self.best_path.name)
            if int(best.get("epoch", -1)) != recorded_best:
                raise ModelFileError(
                    f"{source.parent / self.best_path.name} does not hold epoch {recorded_best}, the best "
                    f"one recorded in {source}. Keep the checkpoint folder together, or train again."
                )
            self.best_epochs.restore(best, self.epoch)
            if source.parent.resolve() != self.best_path.parent.resolve():
                save_checkpoint(self.best_path, best)

    def save_last(self) -> None:
        rng = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
        }
        save_checkpoint(
            self.last_path,
            {
                "format": CHECKPOINT_FORMAT,
                "epoch": self.epoch,
                "config": self.config.to_dict(),
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "history": self.history,
                "best_epoch": self.best_epoch,
                "best_metric": self.best_metric,
                "rng": rng,
                "budget": None if self.budget is None else self.budget.to_dict(),
                **self.run.checkpoint_extra,
            },
        )

    def check_cancel(self, closing: bool = False) -> None:
        """Raises `JobCancelled` when asked to; ``closing``: in `keep_best`, after the last epoch."""
        if self.cancel.cancelled:
            during = "while averaging its best epochs" if closing else f"during epoch {self.epoch + 1}"
            raise JobCancelled(
                f"Training was cancelled {during}; {self.last_path} holds epoch "
                f"{self.epoch}. Resume with --resume {self.last_path}."
            )

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def to_device(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        moved = {name: value.to(self.device, non_blocking=True) for name, value in batch.items()}
        moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
        return moved

    def train_epoch(self) -> float:
        self.model.train()
        patches = self.run.train_patches
        patches.set_epoch(self.epoch + 1)
        if self.budget is not None:
            steps = self.budget.state.steps_per_epoch or self.preferred_steps
            patches.count = steps * self.config.batch_size
        loader = self.run.train_loader
        total, smoothed, loss_sum, steps = len(loader), None, 0.0, 0
        start = last = self.run.clock()
        for steps, batch in enumerate(loader, 1):
            self.check_cancel()
            value = self.train_step(self.to_device(batch))
            loss_sum += value
            smoothed = value if smoothed is None else LOSS_SMOOTHING * smoothed + (1 - LOSS_SMOOTHING) * value
            self.report_progress("train", steps, total, start, smoothed)
            now = self.run.clock()
            if self.budget is not None and self.budget_ends_epoch(steps, now - last, now - start):
                break
            last = now
        return loss_sum / max(1, steps)

    def budget_ends_epoch(self, steps: int, seconds: float, epoch_s: float) -> bool:
        """Times the step; plans the run once calibrated; says when this epoch's share is used up.

        ``steps`` and ``epoch_s`` are what this epoch has done and taken so far.
        """
        assert self.budget is not None
        state = self.budget.state
        if self.scheduler.last_epoch > 1:  # the run's first step pays one-off costs: not counted
            self.budget.record_steps(1, seconds)
        if state.planned_epochs == 0 and state.train_steps >= CALIBRATION_STEPS:
            self.replan(steps, epoch_s)
        return (state.planned_epochs > 0 and steps >= state.steps_per_epoch) or self.budget.overrun()

    def replan(self, steps_done: int = 0, epoch_s: float = 0.0) -> None:
        """Plans the epochs from this one on into the time left and stretches the schedule to end there.

        The first plan comes in the middle of the first epoch: the ``steps_done`` in it (taking
        ``epoch_s``) count towards that epoch's steps and time, or the run would end that much early.
        """
        assert self.budget is not None
        first = self.budget.state.planned_epochs == 0
        cap = self.run.budget_max_steps
        plan = self.budget.plan(
            self.epoch,
            len(self.run.val_loader),
            self.preferred_steps,
            epoch_s,
            self.closing_batches(),
            None if cap is None else cap - (self.scheduler.last_epoch - steps_done),
        )
        self.planned_epochs = max(self.budget.state.planned_epochs, self.epoch)
        steps_left = plan.epochs * plan.steps_per_epoch - min(steps_done, plan.steps_per_epoch)
        stretch(self.scheduler, self.scheduler.last_epoch + max(0, steps_left))
        if first:
            self.reporter.on_message("info", self.budget.describe_plan(self.planned_epochs))

    def train_step(self, batch: dict[str, torch.Tensor]) -> float:
        self.optimizer.zero_grad(set_to_none=True)
        try:
            with self.autocast():
                output = self.model(batch["image"])
            loss = self.run.task.loss(output.float(), batch)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        except RuntimeError as exc:
            if is_out_of_memory(exc):
                raise DeviceError(
                    f"{self.device} ran out of memory with batches of {self.config.batch_size} patches of "
                    f"{self.config.patch}×{self.config.patch}. Lower --batch-size or --patch."
                ) from exc
            raise
        self.scheduler.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise EngineError(
                f"Training diverged in epoch {self.epoch + 1} (the loss is {value}). "
                f"Lower the learning rate (--lr, now {self.config.lr:g}) and train again."
            )
        return value

    def closing_batches(self) -> int:
        """Forward batches the run ends with (`keep_best`), besides a last validation pass."""
        loader = self.run.refresh_loader
        return 0 if loader is None or not batch_norms(self.model) else len(loader)

    def validate(self, kept: bool = False) -> _Validation:
        self.model.eval()
        validator = self.run.task.validator()
        loader = self.run.val_loader
        loss_sum, pixels, sample = 0.0, 0, None
        start = self.run.clock()
        with torch.no_grad():
            for index, batch in enumerate(loader, 1):
                self.check_cancel(closing=kept)
                batch = self.to_device(batch)
                with self.autocast():
                    output = self.model(batch["image"])
                output = output.float()
                valid_counts = batch["valid"].flatten(1).sum(dim=1)
                batch_pixels = int(valid_counts.sum())
                if batch_pixels:
                    loss_sum += float(self.run.task.loss(output, batch)) * batch_pixels
                    pixels += batch_pixels
                    validator.update(output, batch)
                    if sample is None:
                        sample = self.run.task.sample(output, batch, int(valid_counts.argmax()))
                self.report_progress("validate", index, len(loader), start, None, kept)
        if not pixels:
            raise DatasetError(
                "The validation part of the data holds no valid pixel (all nodata or unlabelled). "
                "Raise --val-fraction or add labelled images."
            )
        metrics, notes = validator.result()
        return _Validation(loss_sum / pixels, metrics, notes, sample)

    def report_progress(
        self, stage: str, done: int, total: int, start: float, loss: float | None, kept: bool = False
    ) -> None:
        """An epoch's step, or with ``kept`` a step of `keep_best` (after the epochs, so none named)."""
        elapsed = max(self.run.clock() - start, 1e-9)
        self.reporter.on_progress(
            ProgressEvent(
                stage=stage,
                done=done,
                total=total,
                epoch=None if kept else self.epoch + 1,
                epochs=None if kept else self.planned_epochs,
                loss=loss,
                rate=done / elapsed,
                rate_unit="batch/s",
                eta_s=(total - done) * elapsed / done,
                label=f"Epochs {', '.join(map(str, self.best_epochs.epochs))} averaged" if kept else "",
            )
        )

    def keep_best(self) -> dict[str, Any] | None:
        """Averages the best epochs' weights (`engine.training.averaging`), recomputes their batch-norm
        statistics (`engine.training.batch_norm`) and validates them.

        The model is then scored (an anomaly threshold calibrated) as it will predict. Returns that
        validation as a history entry, or None where the budget left no time for it: the best epoch
        alone is kept then, as training left it.
        """
        loader = self.run.refresh_loader
        if loader is None or not self.best_epoch or not batch_norms(self.model):
            return None
        start = self.run.clock()
        self.model.load_state_dict(self.best_epochs.average())
        epochs = ", ".join(map(str, self.best_epochs.epochs))

        def in_time() -> Iterator[dict[str, torch.Tensor]]:
            for done, batch in enumerate(loader, 1):
                if self.budget is not None and self.budget.closing_time_up():
                    return
                yield batch
                self.report_progress("statistics", done, len(loader), start, None, kept=True)

        def forward(batch: dict[str, torch.Tensor]) -> None:
            self.check_cancel(closing=True)
            with self.autocast():
                self.model(self.to_device(batch)["image"])

        patches = refresh_batch_norms(self.model, in_time(), forward)
        if patches < MIN_REFRESH_PATCHES:
            self.model.load_state_dict(self.best_model())
            self.reporter.on_message(
                "info",
                f"The budget left time for {patches} patches, too few to recompute the batch-norm "
                f"statistics of the best epochs' average ({epochs}); the model keeps epoch "
                f"{self.best_epoch} as training left it.",
            )
            return None
        validation = self.validate(kept=True)
        monitor = self.run.task.monitor
        self.reporter.on_message(
            "info",
            f"Weights of epochs {epochs} averaged, their batch-norm statistics recomputed over {patches} "
            f"training patches: validation {monitor} {self.best_metric:.4f} (epoch {self.best_epoch}) -> "
            f"{validation.metrics[monitor]:.4f}.",
        )
        return {
            "epoch": self.best_epoch,
            "averaged_epochs": self.best_epochs.epochs,
            "metrics": validation.metrics,
            **validation.notes,
            "batch_norm_patches": patches,
            "duration_s": self.run.clock() - start,
        }

    def best_model(self) -> dict[str, torch.Tensor]:
        """The best epoch's weights, or before any epoch was scored the current ones."""
        return self.best_epochs.kept[0].model if self.best_epochs.kept else cpu_copy(self.model.state_dict())

    @property
    def best_epoch(self) -> int:
        """The best-scored epoch so far (the earliest of equals), 0 before any was scored."""
        return self.best_epochs.kept[0].epoch if self.best_epochs.kept else 0

    @property
    def best_metric(self) -> float | None:
        return self.best_epochs.kept[0].metric if self.best_epochs.kept else None

    def run_epoch(self) -> None:
        start = self.run.clock()
        train_loss = self.train_epoch()
        trained = self.run.clock()
        validation = self.validate()
        self.epoch += 1
        monitor = self.run.task.monitor
        value = validation.metrics.get(monitor)
        if value is not None and self.best_epochs.offer(self.epoch, value, self.model.state_dict()):
            save_checkpoint(self.best_path, self.best_epochs.checkpoint())
        is_best = self.best_epoch == self.epoch
        lr = float(self.optimizer.param_groups[0]["lr"])
        duration = self.run.clock() - start
        self.history.append(
            {
                "epoch": self.epoch,
                "train_loss": train_loss,
                "val_loss": validation.loss,
                "metrics": validation.metrics,
                "lr": lr,
                "duration_s": duration,
                "is_best": is_best,
                **validation.notes,
            }
        )
        self.save_last()
        self.reporter.on_epoch(
            EpochEvent(
                epoch=self.epoch,
                epochs=self.planned_epochs,
                train_loss=train_loss,
                val_loss=validation.loss,
                metrics=validation.metrics,
                monitor=monitor,
                is_best=is_best,
                lr=lr,
                duration_s=duration,
                sample=validation.sample,
            )
        )
        if self.budget is not None:
            # What an epoch costs besides its steps: validation, checkpoints and the epoch's report.
            self.budget.record_validation(self.run.clock() - trained)
            self.replan()


def fit(
    run: FitInputs,
    reporter: Reporter,
    cancel: CancelToken,
    resume: tuple[dict[str, Any], Path] | None = None,
) -> FitResult:
    """Trains ``run.model`` for the configured epochs (or until early stopping) and returns the best weights.

    Args:
        resume: a loaded ``last.ckpt`` and its path, to continue that run instead of starting anew.

    Raises:
        JobCancelled: the token was set; ``last.ckpt`` holds the last completed epoch.
        DeviceError: the device ran out of memory.
        EngineError: the loss became NaN or infinite.
    """
    loop = _Loop(run, reporter, cancel)
    checkpoint_dir = loop.last_path.parent
    try:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the checkpoint folder {checkpoint_dir}: {exc.strerror}. Choose a writable folder."
        ) from exc
    if resume is not None:
        loop.restore(*resume)
    # At once, resumed or not: from here on last.ckpt belongs to this run (its job id and settings).
    loop.save_last()
    while loop.epoch < loop.planned_epochs and not _patience_exhausted(loop, run.config.patience):
        loop.run_epoch()
    kept = loop.keep_best()
    return FitResult(
        history=loop.history,
        best_model=loop.best_model() if kept is None else cpu_copy(loop.model.state_dict()),
        best_epoch=loop.best_epoch,
        best_metric=loop.best_metric if kept is None else kept["metrics"][run.task.monitor],
        epochs_run=loop.epoch,
        planned_epochs=loop.planned_epochs,
        stopped_early=loop.epoch < loop.planned_epochs,
        kept=kept,
    )


def _patience_exhausted(loop: _Loop, patience: int | None) -> bool:
    """Early stopping: ``patience`` epochs have passed without a better monitored metric."""
    return patience is not None and loop.best_epoch > 0 and loop.epoch - loop.best_epoch >= patience
