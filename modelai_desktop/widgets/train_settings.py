"""The training settings form: every value starts at the engine's default and explains itself.

Defaults come from `engine.training.config.TrainConfig` itself, so the window and ``modelai
train`` start from the same settings, and `make_config` hands the engine a plain TrainConfig that
the job store records and ``modelai jobs rerun`` can run again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import torch
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QWidget,
)

from engine.device import describe_device
from engine.errors import DatasetError
from engine.training.config import TrainConfig
from modelai_desktop import file_dialogs
from modelai_desktop.model_library import MODEL_SUFFIX, SAVE_MODEL_FILTER

GIB = 1024**3
PATCH_STEP = 16
# The sides of a single image the validation strip can take (engine.training.holdout.VAL_SIDES).
VAL_SIDE_CHOICES = (
    ("End (bottom or right)", "end"),
    ("Bottom", "bottom"),
    ("Right", "right"),
    ("Top", "top"),
    ("Left", "left"),
)
PATCHES_PER_EPOCH_STEP = 8
# Random flips and quarter turns (TrainConfig.augment: None lets the engine decide from the data).
AUGMENT_CHOICES = {"Automatic": None, "On": True, "Off": False}


def config_default(name: str) -> Any:
    """The default of a TrainConfig field: the one place the form's initial values come from."""
    field = next(item for item in fields(TrainConfig) if item.name == name)
    if field.default is MISSING:
        raise ValueError(f"TrainConfig.{name} has no default")
    return field.default


def device_choices() -> list[tuple[str, str]]:
    """``(label, device)`` for the device box: Auto, each GPU with its memory, and the CPU.

    Asks the CUDA driver, which can take a second on a GPU machine: call it on a read thread.
    """
    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            info = describe_device(f"cuda:{index}")
            memory = f", {info.memory_bytes / GIB:.0f} GB" if info.memory_bytes else ""
            gpus.append((f"GPU {index}: {info.name}{memory}", f"cuda:{index}"))
    automatic = f"Auto ({gpus[0][0]})" if gpus else "Auto (CPU: no usable GPU)"
    return [(automatic, "auto"), *gpus, ("CPU", "cpu")]


def parse_bands(text: str) -> list[int] | None:
    """``"1,2,3"`` or ``"1-4, 6"`` → 1-based band numbers; empty means every data band.

    Raises:
        DatasetError: the text is not a list of band numbers and ranges.
    """
    bands: list[int] = []
    for part in filter(None, (piece.strip() for piece in text.replace(";", ",").split(","))):
        low, _, high = part.partition("-")
        try:
            first, last = int(low), int(high or low)
        except ValueError:
            raise DatasetError(
                f"Bands {text!r}: {part!r} is not a band number; write e.g. 1,2,3 or 1-4 (empty: all bands)."
            ) from None
        if first < 1 or last < first:
            raise DatasetError(f"Bands {text!r}: {part!r} is no range of bands numbered from 1.")
        bands.extend(band for band in range(first, last + 1) if band not in bands)
    return bands or None


# "Train for" choices: a time budget in seconds, or None to train the given epochs.
TRAIN_FOR: tuple[tuple[str, float | None], ...] = (
    ("Until done", None),
    ("2 min", 120.0),
    ("10 min", 600.0),
    ("1 h", 3600.0),
)


class TrainSettingsForm(QWidget):
    """The settings of one training run. ``changed`` is emitted on every edit (the estimate follows)."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bands = QLineEdit()
        self.bands.setPlaceholderText("all bands")
        self.bands.setToolTip(
            "The bands the network learns from, e.g. 1,2,3 or 1-4. Empty: every data band.\n"
            "A model only works on rasters that have these bands, in this order."
        )
        self.patch = _spin(16, 1024, config_default("patch"), PATCH_STEP, " px")
        self.patch.setToolTip(
            "Side of the square windows the network trains on. Larger windows give more context\n"
            "and need more memory. Must be a multiple of 16 (segmentation) or 8 (anomaly)."
        )
        self.batch_size = _spin(1, 1024, config_default("batch_size"), 1)
        self.batch_size.setToolTip(
            "Patches per training step. 4 gives a short CPU run the most steps; on a GPU, 16 or more\n"
            "keeps it busy. Lower it if the GPU runs out of memory."
        )
        self.epochs = _spin(1, 10_000, config_default("epochs"), 1)
        self.epochs.setToolTip("How many times training goes through an epoch's patches.")
        self.train_for = QComboBox()
        for label, seconds in TRAIN_FOR:
            self.train_for.addItem(label, seconds)
        self.train_for.setToolTip(
            "A time budget: training measures its speed on the first steps and plans epochs and\n"
            "learning-rate schedule to end when the time is up. Without flips and turns a small\n"
            "labelled area ends sooner: more passes over it would over-fit it (the log says so).\n"
            "'Until done' trains the epochs below."
        )
        self.train_for.currentIndexChanged.connect(
            lambda: self.epochs.setEnabled(self.train_for.currentData() is None)
        )
        self.learning_rate = QDoubleSpinBox()
        self.learning_rate.setDecimals(5)
        self.learning_rate.setRange(0.00001, 1.0)
        self.learning_rate.setSingleStep(0.0001)
        self.learning_rate.setValue(config_default("lr"))
        self.learning_rate.setToolTip(
            "The peak step size of the optimiser (with warm-up and decay). Lower it if the loss\n"
            "jumps around or training diverges."
        )
        self.val_percent = _spin(5, 50, round(config_default("val_fraction") * 100), 5, " %")
        self.val_percent.setToolTip(
            "Share of the data held out to measure the model: whole images when there are several,\n"
            "else a strip of the single image. Never used for training."
        )
        self.val_side = QComboBox()
        for label, side in VAL_SIDE_CHOICES:
            self.val_side.addItem(label, side)
        self.val_side.setCurrentIndex(self.val_side.findData(config_default("val_side")))
        self.val_side.setToolTip(
            "Where the validation strip of a single image lies (the end: the bottom of a tall image,\n"
            "the right of a wide one). Choose a side that holds its share of every class: a strip\n"
            "with almost none of a class cannot tell a model that finds it from one that does not.\n"
            "With several images, whole images are held out instead."
        )
        # 0 shows as "Auto": the engine's per-task width (TrainConfig.base_width None).
        self.base_width = _spin(0, 128, config_default("base_width") or 0, 4)
        self.base_width.setSpecialValueText("Auto")
        self.base_width.setToolTip(
            "Feature channels of the network's first layer (doubling at each level). Wider networks\n"
            "learn more but train slower and need more memory. Auto: 16 for segmentation (it\n"
            "learns fastest on a CPU), 32 for anomaly detection."
        )
        self.device = QComboBox()
        self.device.addItem("Auto", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.setToolTip(
            "Where the network runs. Auto takes the first GPU when one works, else the CPU."
        )
        self.patience = _spin(0, 1000, config_default("patience") or 0, 1, " epochs")
        self.patience.setSpecialValueText("Off")
        self.patience.setToolTip(
            "Early stopping: stop when the validation metric has not improved for this many epochs.\n"
            "Off trains every epoch; the best epochs' weights are kept (averaged) either way."
        )
        self.patches_per_epoch = _spin(
            0, 1_000_000, config_default("patches_per_epoch") or 0, PATCHES_PER_EPOCH_STEP
        )
        self.patches_per_epoch.setSpecialValueText("Auto")
        self.patches_per_epoch.setToolTip(
            "Random patches drawn per epoch. Auto looks at every training pixel about twice\n"
            "(8 to 64 batches)."
        )
        self.augment = QComboBox()
        self.augment.addItems(list(AUGMENT_CHOICES))
        self.set_augment(config_default("augment"))
        self.augment.setToolTip(
            "Random flips and quarter turns of each patch, so the model does not depend on the\n"
            "orientation of the scene. Automatic: on where the bands alone find every class (clouds,\n"
            "water), off where a class is a shape (one scene's shadows all fall one way, and turned\n"
            "patches cost quality there). On for a model meant for other scenes."
        )
        self.output = QLineEdit()
        self.output.setToolTip("The model file training writes (.safetensors). It must not exist yet.")
        browse = QToolButton()
        browse.setText("…")
        browse.setToolTip("Choose where to save the model")
        browse.clicked.connect(self.choose_output)
        output_row = QHBoxLayout()
        output_row.setContentsMargins(0, 0, 0, 0)
        output_row.addWidget(self.output, 1)
        output_row.addWidget(browse)

        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.setVerticalSpacing(5)
        form.addRow("Bands", self.bands)
        form.addRow("Patch size", self.patch)
        form.addRow("Batch size", self.batch_size)
        form.addRow("Train for", self.train_for)
        form.addRow("Epochs", self.epochs)
        form.addRow("Learning rate", self.learning_rate)
        form.addRow("Validation", self.val_percent)
        form.addRow("Validation side", self.val_side)
        form.addRow("Network width", self.base_width)
        form.addRow("Device", self.device)
        form.addRow("Early stopping", self.patience)
        form.addRow("Patches / epoch", self.patches_per_epoch)
        form.addRow("Flips and turns", self.augment)
        form.addRow("Save model as", output_row)
        for spin in (
            self.patch,
            self.batch_size,
            self.epochs,
            self.val_percent,
            self.base_width,
            self.patience,
            self.patches_per_epoch,
        ):
            spin.valueChanged.connect(self.changed)
        self.learning_rate.valueChanged.connect(self.changed)
        self.bands.textChanged.connect(self.changed)
        self.output.textChanged.connect(self.changed)
        self.device.currentIndexChanged.connect(self.changed)
        self.val_side.currentIndexChanged.connect(self.changed)
        self.train_for.currentIndexChanged.connect(self.changed)
        self.augment.currentIndexChanged.connect(self.changed)

    def set_devices(self, choices: Sequence[tuple[str, str]]) -> None:
        """Fills the device box (see `device_choices`), keeping the chosen device when it is still there."""
        chosen = self.device.currentData()
        self.device.clear()
        for label, value in choices:
            self.device.addItem(label, value)
        self.device.setCurrentIndex(max(0, self.device.findData(chosen)))

    def set_device(self, device: str) -> bool:
        """Selects a device by its value (``auto``, ``cpu``, ``cuda:0``); False when it is not listed."""
        index = self.device.findData(device)
        if index >= 0:
            self.device.setCurrentIndex(index)
        return index >= 0

    def set_augment(self, augment: bool | None) -> None:
        """Shows a TrainConfig.augment value (None: automatic)."""
        label = next(label for label, value in AUGMENT_CHOICES.items() if value is augment)
        self.augment.setCurrentText(label)

    def output_path(self) -> Path | None:
        text = self.output.text().strip()
        return Path(text).expanduser() if text else None

    def choose_output(self) -> None:
        """The Save As dialog (a plain slot, so its modal loop never runs inside a coroutine)."""
        current = self.output_path()
        path = file_dialogs.save_file(self, "Save the model as", SAVE_MODEL_FILTER, current)
        if path:
            self.output.setText(str(path if path.suffix else path.with_suffix(MODEL_SUFFIX)))

    def show_config(self, config: TrainConfig) -> None:
        """Shows the settings of an earlier run (one being resumed), so the form says what runs."""
        self.bands.setText(",".join(map(str, config.bands)) if config.bands else "")
        self.patch.setValue(config.patch)
        self.batch_size.setValue(config.batch_size)
        self.epochs.setValue(config.epochs)
        self.train_for.setCurrentIndex(max(0, self.train_for.findData(config.time_budget_s)))
        self.learning_rate.setValue(config.lr)
        self.val_percent.setValue(round(config.val_fraction * 100))
        self.val_side.setCurrentIndex(max(0, self.val_side.findData(config.val_side)))
        self.base_width.setValue(config.base_width or 0)
        self.set_device(config.device)
        self.patience.setValue(config.patience or 0)
        self.patches_per_epoch.setValue(config.patches_per_epoch or 0)
        self.set_augment(config.augment)
        self.output.setText(str(config.output))

    def make_config(self, task: str, images: list[Path], masks: list[Path] | None) -> TrainConfig:
        """The TrainConfig these settings describe, checked by the engine.

        Raises:
            DatasetError: a value the engine refuses (bad bands text, patch size, missing output name).
        """
        output = self.output_path()
        if output is None:
            raise DatasetError("Give a file name for the model (Save model as).")
        config = TrainConfig(
            task=task,
            images=list(images),
            masks=list(masks) if task == "segmentation" and masks else None,
            output=output,
            patch=self.patch.value(),
            batch_size=self.batch_size.value(),
            epochs=self.epochs.value(),
            time_budget_s=self.train_for.currentData(),
            lr=self.learning_rate.value(),
            val_fraction=self.val_percent.value() / 100,
            val_side=self.val_side.currentData(),
            device=self.device.currentData() or "auto",
            bands=parse_bands(self.bands.text()),
            base_width=self.base_width.value() or None,
            patches_per_epoch=self.patches_per_epoch.value() or None,
            patience=self.patience.value() or None,
            augment=AUGMENT_CHOICES[self.augment.currentText()],
        )
        config.validate()
        return config


def _spin(low: int, high: int, value: int, step: int, suffix: str = "") -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setSuffix(suffix)
    return spin
