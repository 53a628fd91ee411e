"""The Train page's settings form: the "Train for" time budget, flips and turns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from modelai_desktop.widgets.train_settings import TrainSettingsForm


def test_train_for_sets_a_time_budget_and_replaces_the_epochs(qtbot, tmp_path: Path) -> None:
    form = TrainSettingsForm()
    qtbot.addWidget(form)
    form.output.setText(str(tmp_path / "m.safetensors"))
    images, masks = [tmp_path / "images"], [tmp_path / "masks"]
    assert form.make_config("segmentation", images, masks).time_budget_s is None
    assert form.epochs.isEnabled()

    form.train_for.setCurrentIndex(form.train_for.findText("2 min"))
    config = form.make_config("segmentation", images, masks)
    assert config.time_budget_s == 120 and not form.epochs.isEnabled()
    form.grab().save(str(tmp_path / "train_settings.png"))

    form.show_config(replace(config, time_budget_s=None))
    assert form.train_for.currentText() == "Until done" and form.epochs.isEnabled()
    form.show_config(replace(config, time_budget_s=3600.0))
    assert form.train_for.currentText() == "1 h"


def test_flips_and_turns_are_automatic_unless_chosen(qtbot, tmp_path: Path) -> None:
    form = TrainSettingsForm()
    qtbot.addWidget(form)
    form.output.setText(str(tmp_path / "m.safetensors"))
    images, masks = [tmp_path / "images"], [tmp_path / "masks"]
    assert form.augment.currentText() == "Automatic"
    config = form.make_config("segmentation", images, masks)
    assert config.augment is None, "the engine decides from the per-pixel start"

    changed: list[None] = []
    form.changed.connect(lambda: changed.append(None))
    form.augment.setCurrentText("Off")
    assert changed and form.make_config("segmentation", images, masks).augment is False
    form.show_config(replace(config, augment=True))
    assert form.augment.currentText() == "On"
    form.show_config(config)
    assert form.augment.currentText() == "Automatic"
