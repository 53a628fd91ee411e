"""``modelai train segmentation IMAGES (MASKS | --labels FILE) -o MODEL``, ``modelai train anomaly``.

A thin adapter: options become a `TrainConfig`, the job runner trains and records it as a job, a
terminal reporter shows the device, a progress bar and one line per epoch, and the last line says
where the model went.
"""

from __future__ import annotations

import argparse
from dataclasses import fields, replace
from pathlib import Path

from engine.cli import EXIT_OK
from engine.cli.commands import VERBS
from engine.cli.results import add_json_option, outcome_json, print_json
from engine.cli.terminal import TerminalReporter
from engine.datasets import MASK_VALUES
from engine.device import PRECISIONS
from engine.jobs import runner
from engine.jobs.specs import TrainSpec
from engine.models.metadata import recomputed_note
from engine.progress import CancelToken
from engine.rasters.normalize import METHODS
from engine.rasters.read import NODATA_HELP
from engine.training import TrainConfig, TrainResult, checkpoint_config
from engine.training.budget import parse_duration
from engine.training.config import RUNTIME_SETTINGS, SCHEDULES, UNLABELLED
from engine.training.holdout import VAL_SIDES

DEFAULTS = {field.name: field.default for field in fields(TrainConfig)}
# What is learnt (everything but the task, where things are and how they run), as option names.
LEARNING_OPTIONS = tuple(name for name in DEFAULTS if name not in (*RUNTIME_SETTINGS, "task"))


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``train`` with its two tasks."""
    parser = subparsers.add_parser(
        "train",
        help=VERBS["train"].summary,
        description="Train a model on GeoTIFF images and write it as one .safetensors file.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    segmentation = tasks.add_parser(
        "segmentation",
        help="per-pixel classes from images and masks",
        description="Train a U-Net on images and class masks (paired by file name: a.tif ↔ a.tif or "
        "a_mask.tif). Masks hold class ids 0–254; 255 or the mask's nodata value means unlabelled; "
        "a set whose masks hold only 0 and 255 is read as binary 0/1 (see --mask-values).",
    )
    segmentation.add_argument("images", type=Path, metavar="IMAGES", help="image file or folder")
    segmentation.add_argument(
        "masks", type=Path, nargs="?", metavar="MASKS", help="mask file or folder (or give --labels)"
    )
    _add_label_options(segmentation)
    segmentation.add_argument("--depth", type=int, help="U-Net pooling levels (default 4)")
    segmentation.add_argument(
        "--class-names", type=_names, metavar="A,B,…", help="class names in id order (0, 1, …)"
    )
    segmentation.add_argument(
        "--mask-values",
        choices=MASK_VALUES,
        help="how 255 is read in every mask: binary (class 1), classes (unlabelled), or auto: binary "
        "when all masks hold only 0 and 255 (default auto)",
    )
    segmentation.add_argument(
        "--class-colors", type=_names, metavar="#RRGGBB,…", help="class colours in id order"
    )
    segmentation.add_argument(
        "--class-balance",
        type=float,
        help="share of patches centred on a class chosen uniformly, 0 for plain random "
        f"(default {DEFAULTS['class_balance']})",
    )
    segmentation.add_argument(
        "--class-weights",
        action=argparse.BooleanOptionalAction,
        help=f"weigh cross-entropy toward rare classes (default {DEFAULTS['class_weights']})",
    )
    anomaly = tasks.add_parser(
        "anomaly",
        help="an anomaly map learnt from normal images only",
        description="Train a convolutional autoencoder on normal images; its reconstruction error, "
        "above a threshold calibrated on held-out normal pixels, flags anomalies.",
    )
    anomaly.add_argument("images", type=Path, metavar="IMAGES", help="image file or folder")
    anomaly.add_argument("--depth", type=int, help="autoencoder downsamplings (default 3)")
    anomaly.add_argument(
        "--latent-channels",
        type=int,
        help=f"bottleneck channels (default {DEFAULTS['latent_channels']})",
    )
    anomaly.add_argument(
        "--threshold-quantile",
        type=float,
        help="share of held-out normal pixels below the threshold"
        f" (default {DEFAULTS['threshold_quantile']})",
    )
    for task_parser in (segmentation, anomaly):
        _add_common_options(task_parser)
        task_parser.set_defaults(func=run)


def _add_label_options(parser: argparse.ArgumentParser) -> None:
    """Training from polygons instead of masks (README "Train from polygons")."""
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="FILE",
        help="polygons to train from instead of masks: GeoPackage, Shapefile (.shp or .zip), GeoJSON "
        "or FlatGeobuf",
    )
    parser.add_argument(
        "--label-field", metavar="NAME", help="field with class names or ids (default: one class)"
    )
    parser.add_argument("--label-layer", metavar="NAME", help="layer of a file with several layers")
    parser.add_argument(
        "--unlabelled",
        choices=UNLABELLED,
        help="pixels outside every polygon: background (class 0) or ignore (no label) "
        f"(default {DEFAULTS['unlabelled']})",
    )
    parser.add_argument(
        "--all-touched",
        action="store_true",
        default=None,
        help="label every pixel a polygon touches (default: pixels whose centre is inside)",
    )


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.safetensors)")
    parser.add_argument("--patch", type=int, help=f"patch size in pixels (default {DEFAULTS['patch']})")
    parser.add_argument(
        "--batch-size",
        type=int,
        help=f"patches per batch (default {DEFAULTS['batch_size']})",
    )
    parser.add_argument(
        "--time-budget",
        dest="time_budget_s",
        type=_duration,
        metavar="DURATION",
        help="train for this long (90s, 2m, 1h): epochs and schedule are planned to fit; replaces --epochs",
    )
    parser.add_argument("--epochs", type=int, help=f"number of epochs (default {DEFAULTS['epochs']})")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default {DEFAULTS['lr']})")
    parser.add_argument(
        "--val-fraction",
        type=float,
        help=f"share held out for validation (default {DEFAULTS['val_fraction']})",
    )
    parser.add_argument(
        "--val-side",
        choices=VAL_SIDES,
        help="where one image's validation strip lies; end is the bottom of a tall image, the right of a "
        "wide one; a warning says when it holds too little of a class to rank epochs "
        f"(default {DEFAULTS['val_side']})",
    )
    parser.add_argument(
        "--device", default=DEFAULTS["device"], help="auto, cpu, cuda or cuda:N (default %(default)s)"
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default=DEFAULTS["precision"], help="default %(default)s"
    )
    parser.add_argument("--bands", type=_bands, metavar="1,2,…", help="1-based bands to use (default all)")
    parser.add_argument(
        "--base-width",
        type=int,
        help="channels of the first level (default 16 for segmentation, 32 for anomaly)",
    )
    parser.add_argument(
        "--pixel-width",
        type=int,
        help="segmentation: hidden channels of the per-pixel path from the bands to the classes, fitted on"
        f" sampled pixels before the U-Net trains; 0 for none (default {DEFAULTS['pixel_width']})",
    )
    parser.add_argument("--seed", type=int, help=f"random seed (default {DEFAULTS['seed']})")
    parser.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue from a last.ckpt with its settings: options left out take the checkpoint's"
        " values, a different value is refused (only --epochs may grow)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=DEFAULTS["num_workers"],
        help="data loading processes (default %(default)s)",
    )
    parser.add_argument(
        "--normalization",
        choices=METHODS,
        help=f"default {DEFAULTS['normalization']}: each band's mean and standard deviation; percentile maps "
        "its 2nd-98th percentiles to -1..1, clipped beyond for segmentation (lower IoU on both "
        "benchmark tasks) and not for anomaly models",
    )
    parser.add_argument("--patches-per-epoch", type=int, help="default: from the data area")
    parser.add_argument("--schedule", choices=SCHEDULES, help=f"default {DEFAULTS['schedule']}")
    parser.add_argument("--patience", type=int, help="stop after this many epochs without improvement")
    parser.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        help="random flips and quarter turns of each patch (default: on where the bands alone find every"
        " class, off where a class is a shape: one scene's shadows all fall one way; give --augment for a"
        " model meant for other scenes)",
    )
    parser.add_argument("--checkpoint-dir", type=Path, help="default: <output stem>.checkpoints/")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model file")
    parser.add_argument("--nodata", type=float, metavar="VALUE", help=NODATA_HELP)
    add_json_option(parser)


def _bands(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of band numbers") from exc


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",")]


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` that the parsed options describe.

    Options that decide what is learnt are None unless given: a fresh run takes the defaults for
    them, a resumed one (``--resume``) the checkpoint's values, so the job records what really runs.
    """
    given = {name: getattr(args, name) for name in LEARNING_OPTIONS if getattr(args, name, None) is not None}
    command = {
        "task": args.task,
        "images": [args.images],
        "masks": [args.masks] if args.task == "segmentation" and args.masks is not None else None,
        "labels": getattr(args, "labels", None),
        "output": args.output,
        "device": args.device,
        "precision": args.precision,
        "resume": args.resume,
        "num_workers": args.num_workers,
        "checkpoint_dir": args.checkpoint_dir,
        "overwrite": args.overwrite,
    }
    if args.resume is None:
        return TrainConfig(**command, **given)
    return replace(checkpoint_config(args.resume), **command, **given)


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Trains as a recorded job, then prints the best epoch and the model's path (or JSON) on stdout."""
    with runner.open_store(args.home) as store:
        outcome = runner.run(
            store, TrainSpec(config_from_args(args)), TerminalReporter.for_args(args), cancel
        )
    if args.json:
        print_json(outcome_json(outcome))
    else:
        print_result(outcome.training)
    return EXIT_OK


def print_result(result: TrainResult) -> None:
    """The best epoch (when a metric was monitored) and where the model went."""
    training = result.metadata.training
    if result.best_metric is not None:
        stopped = " (stopped early)" if result.stopped_early else ""
        print(
            f"Best {training['monitor']} {result.best_metric:.4f} at epoch {training['best_epoch']} "
            f"of {result.epochs_run}{stopped}{recomputed_note(training)}."
        )
    print(f"Model written to {result.model_path}")
