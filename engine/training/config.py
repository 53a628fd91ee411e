"""The settings of one training run, as a plain dataclass that round-trips through JSON.

The job store keeps a run's settings as JSON and a checkpoint carries them, so that a resumed run
trains exactly as the interrupted one did. Values are checked here, before any file is opened, so a
typo fails in a second with a message naming the option.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from engine.datasets import MASK_VALUES
from engine.device import PRECISIONS
from engine.errors import DatasetError
from engine.models.metadata import repeated_class_names
from engine.rasters.normalize import METHODS
from engine.training.holdout import VAL_SIDES

TASKS = ("segmentation", "anomaly")
SCHEDULES = ("onecycle", "cosine")
DEFAULT_DEPTH = {"segmentation": 4, "anomaly": 3}
# Width 16 for segmentation: on a 2-core CPU it trains about 4x the steps of width 32 in the same time,
# and scored better in equal time budgets on both real tasks (docs/training_recipe.md). The
# autoencoder keeps 32 until its threshold quality is measured at 16.
DEFAULT_WIDTH = {"segmentation": 16, "anomaly": 32}
MAX_PIXEL_WIDTH = 1024
# Settings added after runs were already stored, with the value those runs implicitly had: a stored
# configuration without them reads with that value, and the fingerprint leaves them out while they
# hold it, so checkpoints and jobs from before still resume and rerun as they were.
ADDED_LATER = {"pixel_width": 0, "val_side": "end"}
# Below this a budget cannot time its first steps and still train and validate a few epochs.
MIN_BUDGET_S = 10.0
_PATH_FIELDS = ("output", "resume", "checkpoint_dir", "labels", "label_cache", "init_model")
CHECKPOINTS_SUFFIX = ".checkpoints"
# Settings that may change when a run is resumed: where things are and how they run, not what is learnt.
RUNTIME_SETTINGS = (
    "images",
    "masks",
    "output",
    "device",
    "precision",
    "num_workers",
    "overwrite",
    "checkpoint_dir",
    "resume",
    "labels",
    "label_cache",
    "init_model",
)
UNLABELLED = ("background", "ignore")
_PATH_LIST_FIELDS = ("images", "masks")


@dataclass
class TrainConfig:
    """Everything that decides what a training run does. ``depth`` None means 4 (U-Net) or 3 (AE);
    ``base_width`` None means 16 (U-Net) or 32 (AE). ``pixel_width`` (U-Net only) is the hidden
    width of its per-pixel path, fitted on sampled pixels before the network trains; 0 for none.

    With ``time_budget_s`` the run plans its own epochs and patches per epoch to fill that many
    seconds (see `engine.training.budget`), and ``epochs`` is not used.
    """

    task: str
    images: list[Path]
    output: Path
    masks: list[Path] | None = None
    patch: int = 128
    # More optimizer steps per CPU minute than batches of 16, which short budgets need (training_recipe.md).
    batch_size: int = 4
    epochs: int = 20
    time_budget_s: float | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.2
    val_side: str = "end"
    device: str = "auto"
    precision: str = "auto"
    bands: list[int] | None = None
    base_width: int | None = None
    depth: int | None = None
    pixel_width: int = 32
    latent_channels: int = 8
    seed: int = 0
    resume: Path | None = None
    num_workers: int = 0
    normalization: str = "standard"
    patches_per_epoch: int | None = None
    schedule: str = "onecycle"
    warmup_fraction: float = 0.1
    patience: int | None = None
    # None: on where the per-pixel start is kept (the bands alone find every class), else off (one
    # scene's shadows all fall one way); see engine.training._augment.
    augment: bool | None = None
    class_balance: float = 0.5
    class_weights: bool = False
    threshold_quantile: float = 0.99
    class_names: list[str] | None = None
    class_colors: list[str] | None = None
    mask_values: str = "auto"
    checkpoint_dir: Path | None = None
    overwrite: bool = False
    labels: Path | None = None
    label_layer: str | None = None
    label_field: str | None = None
    unlabelled: str = "background"
    all_touched: bool = False
    label_cache: Path | None = None
    # The nodata value of images that declare none (``--nodata``).
    nodata: float | None = None
    init_model: Path | None = None

    @property
    def network_depth(self) -> int:
        return self.depth if self.depth is not None else DEFAULT_DEPTH[self.task]

    @property
    def network_width(self) -> int:
        return self.base_width if self.base_width is not None else DEFAULT_WIDTH[self.task]

    def validate(self) -> None:
        """Checks every value; raises DatasetError naming the option and its allowed range."""
        checks = [
            (self.task in TASKS, f"task must be one of {', '.join(TASKS)}, not {self.task!r}"),
            (bool(self.images), "give at least one image file or folder"),
            (
                self.task != "segmentation" or bool(self.masks) or self.labels is not None,
                "segmentation needs masks (a file or folder) or a label file (--labels)",
            ),
            (not (self.masks and self.labels), "give masks or a label file (--labels), not both"),
            (self.unlabelled in UNLABELLED, f"--unlabelled must be one of {', '.join(UNLABELLED)}"),
            (self.patch >= 8, f"--patch must be at least 8, not {self.patch}"),
            (self.batch_size >= 1, f"--batch-size must be at least 1, not {self.batch_size}"),
            (self.epochs >= 1, f"--epochs must be at least 1, not {self.epochs}"),
            (
                self.time_budget_s is None or self.time_budget_s >= MIN_BUDGET_S,
                f"--time-budget must be at least {MIN_BUDGET_S:g} s, not {self.time_budget_s} s",
            ),
            (self.lr > 0, f"--lr must be positive, not {self.lr}"),
            (0 < self.val_fraction < 1, f"--val-fraction must be between 0 and 1, not {self.val_fraction}"),
            (self.val_side in VAL_SIDES, f"--val-side must be one of {', '.join(VAL_SIDES)}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
            (self.bands is None or bool(self.bands), "--bands must list at least one band"),
            (
                self.base_width is None or self.base_width >= 1,
                f"--base-width must be at least 1, not {self.base_width}",
            ),
            (self.depth is None or 1 <= self.depth <= 6, f"--depth must be 1 to 6, not {self.depth}"),
            (
                0 <= self.pixel_width <= MAX_PIXEL_WIDTH,
                f"--pixel-width must be 0 (none) to {MAX_PIXEL_WIDTH}, not {self.pixel_width}",
            ),
            (self.num_workers >= 0, f"--num-workers must be 0 or more, not {self.num_workers}"),
            (self.normalization in METHODS, f"--normalization must be one of {', '.join(METHODS)}"),
            (self.mask_values in MASK_VALUES, f"--mask-values must be one of {', '.join(MASK_VALUES)}"),
            (
                self.patches_per_epoch is None or self.patches_per_epoch >= 1,
                f"--patches-per-epoch must be at least 1, not {self.patches_per_epoch}",
            ),
            (
                0 <= self.class_balance <= 1,
                f"--class-balance must be between 0 and 1, not {self.class_balance}",
            ),
            (self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}"),
            (0 <= self.warmup_fraction < 1, "warm-up fraction must be in [0, 1)"),
            (
                self.patience is None or self.patience >= 1,
                f"--patience must be at least 1, not {self.patience}",
            ),
            (
                0.5 <= self.threshold_quantile < 1,
                f"--threshold-quantile must be in [0.5, 1), not {self.threshold_quantile}",
            ),
        ]
        problems = [message for ok, message in checks if not ok]
        repeated = repeated_class_names(self.class_names or [])
        if repeated:
            problems.append(
                f"--class-names gives {', '.join(map(repr, repeated))} to more than one class; "
                "give each class its own name"
            )
        multiple = 2**self.network_depth
        if self.patch % multiple:
            problems.append(
                f"--patch {self.patch} must be a multiple of {multiple} (2**depth for depth "
                f"{self.network_depth}); try {max(multiple, self.patch // multiple * multiple)}"
            )
        if problems:
            raise DatasetError("Invalid training settings: " + "; ".join(problems) + ".")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (paths as strings)."""
        data = asdict(self)
        for name in _PATH_FIELDS:
            data[name] = None if data[name] is None else str(data[name])
        for name in _PATH_LIST_FIELDS:
            data[name] = None if data[name] is None else [str(p) for p in data[name]]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuilds a config from ``to_dict`` output; unknown keys are refused, missing ones defaulted."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DatasetError(
                f"Unknown training setting(s) {', '.join(unknown)} in the stored configuration."
            )
        values = {**ADDED_LATER, **data}
        for name in _PATH_FIELDS:
            if values.get(name) is not None:
                values[name] = Path(values[name])
        for name in _PATH_LIST_FIELDS:
            if values.get(name) is not None:
                values[name] = [Path(p) for p in values[name]]
        return cls(**values)


def settings_hash(config: TrainConfig) -> str:
    """A short fingerprint of what a run learns (every setting but the runtime ones and the epochs).

    A checkpoint and its job carry it, so a checkpoint is never continued with other settings; the
    epochs are left out because a resumed run may be given more of them.
    """
    learning = {name: value for name, value in config.to_dict().items() if name not in RUNTIME_SETTINGS}
    learning.pop("epochs")
    for name, value in ADDED_LATER.items():
        if learning[name] == value:
            del learning[name]
    text = json.dumps(learning, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resume_differences(given: TrainConfig, stored: TrainConfig) -> list[str]:
    """The learning settings in which ``given`` departs from a checkpoint's ``stored`` ones.

    Runtime settings may differ, and the epochs may grow (the schedule is stretched over them); any
    other difference would silently train something else than what was asked.
    """
    problems = []
    for name in (f.name for f in fields(TrainConfig)):
        mine, theirs = getattr(given, name), getattr(stored, name)
        if name in RUNTIME_SETTINGS or mine == theirs:
            continue
        if name == "epochs" and mine > theirs:
            continue
        option = "--" + name.replace("_", "-")
        problems.append(f"{option} is {_shown(mine)} here but {_shown(theirs)} in the checkpoint")
    return problems


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "not set" if value is None else str(value)


def checkpoint_dir_of_model(model: Path) -> Path:
    """``<model folder>/<model stem>.checkpoints``: the default checkpoint folder of a model file."""
    return model.parent / f"{model.stem}{CHECKPOINTS_SUFFIX}"


def checkpoint_dir_for(config: TrainConfig) -> Path:
    """Where checkpoints go: the configured folder, else the model's (:func:`checkpoint_dir_of_model`)."""
    if config.checkpoint_dir is not None:
        return config.checkpoint_dir
    return checkpoint_dir_of_model(config.output)


def checkpoint_path_for(config: TrainConfig) -> Path:
    """The ``last.ckpt`` a run writes after every epoch, i.e. what ``resume`` should point at."""
    return checkpoint_dir_for(config) / "last.ckpt"


def best_checkpoint_path_for(config: TrainConfig) -> Path:
    """The checkpoint holding the best epoch's weights so far."""
    return checkpoint_dir_for(config) / "best.ckpt"
