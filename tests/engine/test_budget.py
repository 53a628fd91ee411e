"""Time budgets: durations, the epoch planner, and a real run timed by a fake clock (no wall time)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import DatasetError, JobCancelled
from engine.models.file import load_checkpoint
from engine.progress import CancelToken, EpochEvent, RecordingReporter
from engine.training import checkpoint_path_for, train
from engine.training.budget import (
    MAX_PASSES_UNTURNED,
    MIN_EPOCHS,
    MIN_STEPS,
    BudgetState,
    EpochPlan,
    TimeBudget,
    cap_plan,
    parse_duration,
    pass_cap_steps,
    plan_epochs,
)
from engine.training.schedule import COSINE_FLOOR
from tests.engine.test_training import CancellingReporter, write_two_class_scenes


class TickingClock:
    """Advances a fixed amount on every reading: each step, validation batch and message costs time."""

    def __init__(self, tick: float) -> None:
        self.now = 0.0
        self.tick = tick

    def __call__(self) -> float:
        self.now += self.tick
        return self.now


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("2m", 120), ("1h", 3600), ("1h30m", 5400), ("45", 45), ("1.5m", 90)]
)
def test_durations_parse(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "2 weeks", "m", "0s", "-5m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_plan_fills_the_time_with_whole_epochs() -> None:
    plan = plan_epochs(available_s=100, step_s=0.5, validation_s=2, preferred_steps=16)
    assert plan == EpochPlan(epochs=10, steps_per_epoch=16)
    assert plan.epochs * (plan.steps_per_epoch * 0.5 + 2) <= 100


def test_short_budgets_get_fewer_steps_not_fewer_epochs() -> None:
    plan = plan_epochs(available_s=30, step_s=1, validation_s=2, preferred_steps=64)
    assert plan.epochs == MIN_EPOCHS and plan.steps_per_epoch == 8


def test_replan_keeps_the_epoch_count_and_drops_epochs_only_when_nothing_fits() -> None:
    assert plan_epochs(40, step_s=1, validation_s=0, preferred_steps=16, epochs_left=4).steps_per_epoch == 10
    squeezed = plan_epochs(10, step_s=1, validation_s=0, preferred_steps=16, epochs_left=4)
    assert squeezed.epochs == 2 and squeezed.steps_per_epoch >= MIN_STEPS
    assert plan_epochs(1, step_s=1, validation_s=0, preferred_steps=16, epochs_left=4).epochs == 0


def test_a_step_cap_drops_epochs_first_and_shortens_them_on_a_replan() -> None:
    assert pass_cap_steps(area_px=10_000, patch=10, batch_size=4, passes=2) == 50
    assert pass_cap_steps(area_px=10_001, patch=10, batch_size=4, passes=2) == 51
    plan = EpochPlan(epochs=200, steps_per_epoch=20)

    def cap(plan: EpochPlan, max_steps: int, replanning: bool = False) -> EpochPlan:
        return cap_plan(plan, max_steps, preferred_steps=14, replanning=replanning)

    assert cap(plan, 4000) == plan
    assert cap(plan, 840) == EpochPlan(60, 14)
    assert cap(plan, 20) == EpochPlan(MIN_EPOCHS, 6)
    assert cap(EpochPlan(2, 20), 20) == EpochPlan(2, 10)
    assert cap(EpochPlan(30, 20), 420, replanning=True) == EpochPlan(30, 14)
    assert cap(EpochPlan(30, 20), -5, replanning=True) == EpochPlan(30, MIN_STEPS)


def test_a_run_without_flips_and_turns_ends_before_a_budget_longer_than_its_passes(tmp_path: Path) -> None:
    """A small scene and a long budget: without flips and turns the run stops planning at
    MAX_PASSES_UNTURNED looks at each training pixel, ends its schedule there and says so (with them
    a budget is filled: the test above)."""
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=300, augment=False)
    reporter = RecordingReporter()
    clock = TickingClock(0.25)
    capped = train(config, reporter, clock=clock)
    assert clock.now < 0.75 * 300 and sum(entry["duration_s"] for entry in capped.history) < 0.3 * 300
    assert any(
        "before its budget" in text and f"{MAX_PASSES_UNTURNED} looks" in text
        for _, text in reporter.messages
    )
    assert capped.history[-1]["lr"] <= 2 * COSINE_FLOOR * config.lr
    assert capped.best_metric > 0.9
    batches = max(MIN_STEPS, config.patches_per_epoch // config.batch_size)
    assert capped.epochs_run * batches <= pass_cap_steps(64 * 64, config.patch, config.batch_size)


def test_a_budget_too_short_is_refused_before_training(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=3)
    with pytest.raises(DatasetError, match="--time-budget must be at least"):
        train(config)


def test_budgeted_run_ends_its_schedule_at_the_budget_and_keeps_the_best_epoch(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=60)
    clock = TickingClock(0.25)
    result = train(config, clock=clock)
    assert abs(clock.now - 60) <= 0.1 * 60 and result.metadata.training["augment"]
    assert result.epochs_run >= MIN_EPOCHS and result.metadata.training["epochs"] == result.epochs_run
    assert result.history[-1]["lr"] <= 2 * COSINE_FLOOR * config.lr
    assert result.best_metric == max(entry["metrics"]["mean_iou"] for entry in result.history)
    assert result.best_metric > 0.9


def test_a_resumed_budgeted_run_spends_only_what_is_left(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=60)
    cancel = CancelToken()
    reporter = CancellingReporter(cancel, lambda event: isinstance(event, EpochEvent) and event.epoch == 2)
    with pytest.raises(JobCancelled):
        train(config, reporter, cancel, clock=TickingClock(0.25))
    spent = load_checkpoint(checkpoint_path_for(config))["budget"]["spent_s"]
    assert 0 < spent < 30

    clock = TickingClock(0.25)
    resumed = train(replace(config, resume=checkpoint_path_for(config)), clock=clock)
    assert abs(spent + clock.now - 60) <= 0.1 * 60
    assert resumed.epochs_run > 2 and resumed.history[-1]["lr"] <= 2 * COSINE_FLOOR * config.lr


def test_a_first_epoch_that_used_up_the_budget_is_the_last() -> None:
    clock = TickingClock(0.0)
    ended, starting = TimeBudget(BudgetState(30.0), clock), TimeBudget(BudgetState(30.0), clock)
    clock.now = 40.0  # one slow step and a validation took longer than the whole budget
    for budget in (ended, starting):
        budget.record_steps(1, 30.0)
        budget.record_validation(5.0)
    assert ended.plan(epochs_done=1, validation_batches=4, preferred_steps=16).epochs == 0
    assert ended.state.planned_epochs == 1
    assert starting.plan(epochs_done=0, validation_batches=4, preferred_steps=16) == EpochPlan(1, 1)


def test_slow_steps_that_calibrate_through_half_the_budget_still_fill_it(tmp_path: Path) -> None:
    """Steps of 3 s, epochs costing 7 s besides their steps: the plan counts the steps timed before it
    and everything an epoch costs (validation, checkpoints, reports), or the run ends early or late."""
    config = replace(write_two_class_scenes(tmp_path, uniform=False), time_budget_s=60)
    clock = TickingClock(1.0)
    result = train(config, clock=clock)
    assert abs(clock.now - 60) <= 0.1 * 60
    assert result.history[-1]["lr"] <= 2 * COSINE_FLOOR * config.lr
