"""Training for a wall-clock budget: measure the speed, then plan epochs and steps to fill the time.

A user with minutes to spare asks for "2 minutes", not for epochs. The loop times its first training
steps and each validation pass; from those rates this module plans how many epochs of how many
steps fit in what is left, and the learning-rate schedule is stretched or shrunk to end exactly
there (a schedule cut off at its peak learning rate leaves a poor model). After every epoch the plan
is redone with the rates measured so far, because the speed drifts (other programs, thermal limits).

Everything here takes a clock function, so the planning is tested with a fake clock, not wall time.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

# Time kept back for writing the best model and the last checkpoint after the final epoch.
RESERVE_FRACTION = 0.03
RESERVE_MIN_S = 1.0
# Fewer epochs than this cannot pick a best one; more would spend the budget on validation.
MIN_EPOCHS = 3
MAX_EPOCHS = 200
MIN_STEPS = 4
# Training steps timed before the first plan; the first one (allocations, warm caches) is not counted.
CALIBRATION_STEPS = 4
# A forward pass costs about a third of a training step (forward, backward, optimizer update).
FORWARD_SHARE = 1 / 3
# An epoch still running at this share of the budget is cut short, whatever the plan said.
HARD_STOP = 1.05
# The most of the budget kept back for the forward passes a run ends with (batch-norm statistics).
CLOSING_SHARE = 0.05
# Without flips and turns a budgeted segmentation run stops planning after this many looks at each
# training pixel on average: more passes over a small scene over-fit it (docs/training_recipe.md,
# "More time on a small scene").
MAX_PASSES_UNTURNED = 128
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?")


def parse_duration(text: str) -> float:
    """Seconds in ``90s``, ``2m``, ``1h``, ``1h30m`` or a plain number of seconds.

    Raises:
        ValueError: the text is not such a duration, or is zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration such as 90s, 2m, 1h or 1h30m")
    hours, minutes, seconds = (float(part) if part else 0.0 for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise ValueError(f"the duration {text!r} must be more than zero")
    return total


def describe_duration(seconds: float) -> str:
    """``2 min``, ``1 h 30 min``, ``45 s``: for messages (ASCII only)."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes} min" if hours and minutes else f"{hours} h" if hours else f"{minutes} min"


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs are left and how many training steps each of them takes."""

    epochs: int
    steps_per_epoch: int


def plan_epochs(
    available_s: float,
    step_s: float,
    validation_s: float,
    preferred_steps: int,
    epochs_left: int | None = None,
) -> EpochPlan:
    """Fills ``available_s`` with epochs of training steps, each followed by one validation pass.

    Without ``epochs_left`` it chooses the count: epochs of ``preferred_steps`` steps where at
    least MIN_EPOCHS fit (capped at MAX_EPOCHS), else MIN_EPOCHS shorter ones, else one epoch.
    With ``epochs_left`` (a replan) it keeps that count and adapts the steps, dropping epochs only
    when fewer than MIN_STEPS would remain in each. ``epochs`` is 0 when not even that fits.
    """
    step_s, validation_s = max(step_s, 1e-6), max(validation_s, 0.0)

    def steps_for(epochs: int) -> int:
        return math.floor((available_s / epochs - validation_s) / step_s)

    if epochs_left is None:
        full = math.floor(available_s / (preferred_steps * step_s + validation_s))
        if full >= MIN_EPOCHS:
            epochs = min(full, MAX_EPOCHS)
            return EpochPlan(epochs, max(preferred_steps, steps_for(epochs)))
        epochs_left = MIN_EPOCHS
    for epochs in range(epochs_left, 0, -1):
        if steps_for(epochs) >= MIN_STEPS:
            return EpochPlan(epochs, steps_for(epochs))
    return EpochPlan(0, 0)


def pass_cap_steps(area_px: int, patch: int, batch_size: int, passes: int = MAX_PASSES_UNTURNED) -> int:
    """Training steps that look at each of ``area_px`` pixels ``passes`` times on average."""
    return max(1, math.ceil(passes * area_px / (patch * patch * batch_size)))


def cap_plan(plan: EpochPlan, max_steps: int, preferred_steps: int, replanning: bool) -> EpochPlan:
    """``plan`` cut to at most ``max_steps`` training steps: the run ends before its budget.

    A first plan drops epochs and keeps their preferred length (never fewer than MIN_EPOCHS); a
    replan keeps its epoch count, as the schedule is planned over it, and shortens them.
    """
    if plan.epochs == 0 or plan.epochs * plan.steps_per_epoch <= max_steps:
        return plan
    epoch_steps = max(MIN_STEPS, preferred_steps)
    epochs = plan.epochs if replanning else min(plan.epochs, max(MIN_EPOCHS, max_steps // epoch_steps))
    return EpochPlan(epochs, max(MIN_STEPS, max_steps // epochs))


@dataclass
class BudgetState:
    """What a checkpoint keeps of a budgeted run, so that a resumed run spends only what is left."""

    seconds: float
    spent_s: float = 0.0
    planned_epochs: int = 0
    steps_per_epoch: int = 0
    train_steps: int = 0
    train_s: float = 0.0
    validation_s: float = 0.0
    # The plan was cut short by a cap on training steps (`cap_plan`).
    capped: bool = False


class TimeBudget:
    """The clock and the plan of one budgeted run."""

    def __init__(self, state: BudgetState, clock: Callable[[], float] = time.monotonic) -> None:
        self.state = state
        self.clock = clock
        self._origin = clock() - state.spent_s

    @property
    def elapsed_s(self) -> float:
        return self.clock() - self._origin

    @property
    def reserve_s(self) -> float:
        return max(RESERVE_MIN_S, RESERVE_FRACTION * self.state.seconds)

    @property
    def step_s(self) -> float:
        return self.state.train_s / max(1, self.state.train_steps)

    def record_steps(self, steps: int, seconds: float) -> None:
        """Adds timed training steps to the running speed estimate."""
        self.state.train_steps += steps
        self.state.train_s += seconds

    def record_validation(self, seconds: float) -> None:
        self.state.validation_s = seconds

    def plan(
        self,
        epochs_done: int,
        validation_batches: int,
        preferred_steps: int,
        epoch_s: float = 0.0,
        closing_batches: int = 0,
        max_steps: int | None = None,
    ) -> EpochPlan:
        """Plans the epochs after ``epochs_done`` into the time left (the first plan chooses their count).

        ``epoch_s`` is what the epoch in progress has taken so far: its time is planned with the rest.
        Before any validation has run, its cost is estimated from the step time. ``closing_batches``
        forward batches and one more validation pass end the run (the kept weights' batch-norm
        statistics): their time is kept back too, up to CLOSING_SHARE of the budget. ``max_steps``
        caps the training steps of these epochs (`cap_plan`).
        """
        validation_s = self.state.validation_s or validation_batches * self.step_s * FORWARD_SHARE
        closing_s = 0.0
        if closing_batches:
            closing_s = closing_batches * self.step_s * FORWARD_SHARE + validation_s
            closing_s = min(closing_s, CLOSING_SHARE * self.state.seconds)
        available = self.state.seconds - self.reserve_s - self.elapsed_s + epoch_s - closing_s
        first = self.state.planned_epochs == 0
        left = None if first else max(0, self.state.planned_epochs - epochs_done)
        plan = (
            EpochPlan(0, 0)
            if left == 0
            else plan_epochs(available, self.step_s, validation_s, preferred_steps, left)
        )
        if plan.epochs == 0 and left != 0:
            plan = self._closing_epoch(available, validation_s, epochs_done)
        elif max_steps is not None:
            capped = cap_plan(plan, max_steps, preferred_steps, replanning=not first)
            self.state.capped = self.state.capped or capped != plan
            plan = capped
        self.state.planned_epochs = epochs_done + plan.epochs
        self.state.steps_per_epoch = plan.steps_per_epoch
        return plan

    def describe_plan(self, epochs: int) -> str:
        """The first plan, as the user reads it: why this many epochs, and why it ends early if capped."""
        text = (
            f"Time budget {describe_duration(self.state.seconds)}: {self.step_s:.2f} s per batch, so "
            f"{epochs} epoch(s) of {self.state.steps_per_epoch} batches."
        )
        if self.state.capped:
            text += (
                f" The run ends there, before its budget: that is {MAX_PASSES_UNTURNED} looks at each "
                "training pixel, and without flips and turns more passes over a training area this small "
                "over-fit it. More labelled ground uses more of the time; a set number of epochs is not cut."
            )
        return text

    def closing_time_up(self) -> bool:
        """The run's closing passes must stop: only a last validation pass still fits in the budget."""
        return self.elapsed_s + self.state.validation_s >= self.state.seconds - self.reserve_s

    def _closing_epoch(self, available_s: float, validation_s: float, epochs_done: int) -> EpochPlan:
        """One short last epoch that lets the schedule reach its end, paid from the hard-stop margin.

        Without it a run that turned out slower than planned would stop with its learning rate still
        high. A run still in its first epoch always gets it: a budgeted run trains at least one epoch.
        """
        slack = available_s + (HARD_STOP - 1) * self.state.seconds - validation_s
        steps = min(MIN_STEPS, math.floor(slack / max(self.step_s, 1e-6)))
        if steps >= 1 or epochs_done == 0:
            return EpochPlan(1, max(1, steps))
        return EpochPlan(0, 0)

    def overrun(self) -> bool:
        """The budget is spent beyond the hard-stop margin: end the epoch now."""
        return self.elapsed_s > HARD_STOP * self.state.seconds - self.reserve_s

    def to_dict(self) -> dict[str, Any]:
        """The state with the time spent so far, for a checkpoint."""
        self.state.spent_s = self.elapsed_s
        return asdict(self.state)
