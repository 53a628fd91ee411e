"""``modelai train segmentation IMAGES MASKS -o MODEL`` and ``modelai train anomaly IMAGES -o MODEL``.

A thin adapter: options become a `TrainConfig`, the job runner trains and records it as a job, a
terminal reporter shows the device, a progress bar and one line per epoch, and the last line says
where the model went.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path

from engine import runner
from engine.cli import EXIT_OK
from engine.cli.terminal import TerminalReporter
from engine.job_specs import TrainSpec
from engine.normalize import METHODS
from engine.progress import CancelToken
from engine.training import TrainConfig, TrainResult
from engine.training.budget import parse_duration
from engine.training.config import SCHEDULES

DEFAULTS = {field.name: field.default for field in fields(TrainConfig)}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``train`` with its two tasks."""
    parser = subparsers.add_parser(
        "train",
        help="train a segmentation U-Net or an anomaly autoencoder on GeoTIFFs",
        description="Train a model on GeoTIFF images and write it as one .safetensors file.",
    )
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    segmentation = tasks.add_parser(
        "segmentation",
        help="per-pixel classes from images and masks",
        description="Train a U-Net on images and class masks (paired by file name: a.tif ↔ a.tif or "
        "a_mask.tif). Masks hold class ids 0–254; 255 or the mask's nodata value means unlabelled; "
        "0/255 masks are read as 0/1.",
    )
    segmentation.add_argument("images", type=Path, metavar="IMAGES", help="image file or folder")
    segmentation.add_argument("masks", type=Path, metavar="MASKS", help="mask file or folder")
    segmentation.add_argument("--depth", type=int, help="U-Net pooling levels (default 4)")
    segmentation.add_argument(
        "--class-names", type=_names, metavar="A,B,…", help="class names in id order (0, 1, …)"
    )
    segmentation.add_argument(
        "--class-colors", type=_names, metavar="#RRGGBB,…", help="class colours in id order"
    )
    segmentation.add_argument(
        "--class-balance",
        type=float,
        default=DEFAULTS["class_balance"],
        help="share of patches centred on a class chosen uniformly, 0 for plain random (default %(default)s)",
    )
    segmentation.add_argument(
        "--class-weights",
        action=argparse.BooleanOptionalAction,
        default=DEFAULTS["class_weights"],
        help="weigh cross-entropy toward rare classes (default %(default)s)",
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
        default=DEFAULTS["latent_channels"],
        help="bottleneck channels (default %(default)s)",
    )
    anomaly.add_argument(
        "--threshold-quantile",
        type=float,
        default=DEFAULTS["threshold_quantile"],
        help="share of held-out normal pixels below the threshold (default %(default)s)",
    )
    for task_parser in (segmentation, anomaly):
        _add_common_options(task_parser)
        task_parser.set_defaults(func=run)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.safetensors)")
    parser.add_argument(
        "--patch", type=int, default=DEFAULTS["patch"], help="patch size in pixels (default %(default)s)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULTS["batch_size"],
        help="patches per batch (default %(default)s)",
    )
    parser.add_argument(
        "--epochs", type=int, default=DEFAULTS["epochs"], help="number of epochs (default %(default)s)"
    )
    parser.add_argument(
        "--time-budget",
        type=_duration,
        metavar="DURATION",
        help="train for this long (90s, 2m, 1h): epochs and schedule are planned to fit; replaces --epochs",
    )
    parser.add_argument(
        "--lr", type=float, default=DEFAULTS["lr"], help="peak learning rate (default %(default)s)"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULTS["val_fraction"],
        help="share held out for validation (default %(default)s)",
    )
    parser.add_argument(
        "--device", default=DEFAULTS["device"], help="auto, cpu, cuda or cuda:N (default %(default)s)"
    )
    parser.add_argument(
        "--precision", default=DEFAULTS["precision"], help="auto, fp32, bf16 or fp16 (default %(default)s)"
    )
    parser.add_argument("--bands", type=_bands, metavar="1,2,…", help="1-based bands to use (default all)")
    parser.add_argument(
        "--base-width",
        type=int,
        default=DEFAULTS["base_width"],
        help="channels of the first level (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS["seed"], help="random seed (default %(default)s)"
    )
    parser.add_argument("--resume", type=Path, metavar="CHECKPOINT", help="continue from a last.ckpt")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=DEFAULTS["num_workers"],
        help="data loading processes (default %(default)s)",
    )
    parser.add_argument(
        "--normalization", choices=METHODS, default=DEFAULTS["normalization"], help="default %(default)s"
    )
    parser.add_argument("--patches-per-epoch", type=int, help="default: from the data area")
    parser.add_argument(
        "--schedule", choices=SCHEDULES, default=DEFAULTS["schedule"], help="default %(default)s"
    )
    parser.add_argument("--patience", type=int, help="stop after this many epochs without improvement")
    parser.add_argument("--no-augment", action="store_true", help="no random flips and rotations")
    parser.add_argument("--checkpoint-dir", type=Path, help="default: <output stem>.checkpoints/")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing model file")


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
    """The `TrainConfig` that the parsed options describe."""
    segmentation = args.task == "segmentation"
    return TrainConfig(
        task=args.task,
        images=[args.images],
        masks=[args.masks] if segmentation else None,
        output=args.output,
        patch=args.patch,
        batch_size=args.batch_size,
        epochs=args.epochs,
        time_budget_s=args.time_budget,
        lr=args.lr,
        val_fraction=args.val_fraction,
        device=args.device,
        precision=args.precision,
        bands=args.bands,
        base_width=args.base_width,
        depth=args.depth,
        latent_channels=getattr(args, "latent_channels", DEFAULTS["latent_channels"]),
        seed=args.seed,
        resume=args.resume,
        num_workers=args.num_workers,
        normalization=args.normalization,
        patches_per_epoch=args.patches_per_epoch,
        schedule=args.schedule,
        patience=args.patience,
        augment=not args.no_augment,
        threshold_quantile=getattr(args, "threshold_quantile", DEFAULTS["threshold_quantile"]),
        class_names=getattr(args, "class_names", None),
        class_colors=getattr(args, "class_colors", None),
        class_balance=getattr(args, "class_balance", DEFAULTS["class_balance"]),
        class_weights=getattr(args, "class_weights", DEFAULTS["class_weights"]),
        checkpoint_dir=args.checkpoint_dir,
        overwrite=args.overwrite,
    )


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Trains as a recorded job, then prints the best epoch and the model's path on stdout."""
    with runner.open_store(args.home) as store:
        outcome = runner.run(store, TrainSpec(config_from_args(args)), TerminalReporter(), cancel)
    print_result(outcome.training)
    return EXIT_OK


def print_result(result: TrainResult) -> None:
    """The best epoch (when a metric was monitored) and where the model went."""
    training = result.metadata.training
    if result.best_metric is not None:
        stopped = " (stopped early)" if result.stopped_early else ""
        print(
            f"Best {training['monitor']} {result.best_metric:.4f} at epoch {training['best_epoch']} "
            f"of {result.epochs_run}{stopped}."
        )
    print(f"Model written to {result.model_path}")
