"""``modelai models show FILE [--json]``: what a model file holds, without loading its weights.

Before predicting with a model received from someone, a user wants to see which bands in which
order it expects, how it normalises them, its classes and colours, its anomaly threshold and how
well it trained; ``--json`` gives the same metadata to scripts. ``models export-onnx`` lives in
`engine.cli.export_onnx_cmd`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.cli import EXIT_OK, export_onnx_cmd
from engine.cli.commands import VERBS
from engine.models.file import check_model_file
from engine.models.metadata import ModelMetadata, kept_validation, recomputed_note
from engine.progress import CancelToken


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``models show`` and ``models export-onnx``."""
    parser = subparsers.add_parser("models", help=VERBS["models"].summary, description="Inspect model files.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = actions.add_parser(
        "show",
        help="architecture, bands, normalisation, classes, threshold and training summary of a model",
        description="Show what a model file holds (reads its header only).",
    )
    show.add_argument("file", type=Path, metavar="FILE", help="model file (.safetensors)")
    show.add_argument("--json", action="store_true", help="print the metadata as JSON")
    show.set_defaults(func=run)
    export_onnx_cmd.register(actions)


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Prints the model's metadata as text or JSON on stdout."""
    metadata = check_model_file(args.file)
    if args.json:
        print(json.dumps(json.loads(metadata.to_json()), indent=2))
    else:
        print("\n".join(describe(args.file, metadata)))
    return EXIT_OK


def describe(path: Path, metadata: ModelMetadata) -> list[str]:
    """Human-readable lines describing a model."""
    hyperparameters = ", ".join(f"{name}={value}" for name, value in metadata.hyperparameters.items())
    lines = [
        f"Model:          {path}",
        f"Task:           {metadata.task} ({metadata.architecture})",
        f"Hyper-params:   {hyperparameters}",
        f"Bands:          {', '.join(map(str, metadata.bands))} (input {metadata.input_dtype})",
        f"Normalisation:  {_normalization(metadata.normalization)}",
        f"Patch:          {metadata.patch_size}×{metadata.patch_size} pixels",
        f"Trained on:     {_grid(metadata)}",
        f"Created:        {metadata.created or 'unknown'} (format {metadata.format_version})",
    ]
    names = (metadata.raster_profile or {}).get("band_names") or []
    if any(names):
        lines.insert(4, f"Band names:     {', '.join(name or '?' for name in names)}")
    if metadata.classes:
        lines.append("Classes:")
        lines.extend(f"  {info.id:>3}  {info.color}  {info.name}" for info in metadata.classes)
    if metadata.anomaly is not None:
        lines.append(f"Anomaly:        {_anomaly(metadata.anomaly)}")
    lines.extend(_training(metadata.training))
    return lines


def _normalization(normalization: dict[str, Any]) -> str:
    offset = ", ".join(f"{value:.6g}" for value in normalization.get("offset", []))
    scale = ", ".join(f"{value:.6g}" for value in normalization.get("scale", []))
    clip = ", clipped to [-1, 1]" if normalization.get("clip") else ""
    return f"{normalization.get('method', '?')}: (x - [{offset}]) / [{scale}]{clip}"


def _grid(metadata: ModelMetadata) -> str:
    pixel = "unknown pixel size"
    if metadata.pixel_size:
        pixel = f"pixel {metadata.pixel_size[0]:.6g}×{metadata.pixel_size[1]:.6g}"
        ground = (metadata.raster_profile or {}).get("ground_pixel_size_m")
        if ground:
            pixel += f" ({ground[0]:.4g}×{ground[1]:.4g} m on the ground)"
    return f"{pixel}, CRS {metadata.crs or 'none'}"


def _anomaly(anomaly: dict[str, Any]) -> str:
    text = f"threshold {anomaly['threshold']:.6g}"
    if "quantile" in anomaly:
        text += f" (quantile {anomaly['quantile']:g} of held-out normal pixels)"
    names = ("mean", "std", "p50", "p99")
    if all(f"error_{name}" in anomaly for name in names):
        text += "; error " + ", ".join(f"{name} {anomaly[f'error_{name}']:.4g}" for name in names)
    return text


def _training(training: dict[str, Any]) -> list[str]:
    if not training:
        return ["Training:       no summary"]
    lines = []
    if "epochs_run" in training:
        stopped = ", stopped early" if training.get("stopped_early") else ""
        lines.append(
            f"Training:       {training['epochs_run']} of {training.get('epochs', '?')} epochs{stopped}"
        )
    if training.get("best_metric") is not None:
        lines.append(
            f"Best:           {training.get('monitor')} {training['best_metric']:.4f} "
            f"at epoch {training.get('best_epoch')}{recomputed_note(training)}"
        )
    best = kept_validation(training)
    if best is not None:
        metrics = ", ".join(f"{name} {value:.4f}" for name, value in best.get("metrics", {}).items())
        lines.append(f"Kept weights:   {metrics}")
        if best.get("absent_classes"):
            lines.append(f"Absent classes: {', '.join(best['absent_classes'])} (not in validation data)")
    data = training.get("data") or []
    if data:
        lines.append(f"Data:           {len(data)} image(s); {training.get('validation', '')}")
    device = training.get("device") or {}
    if device:
        lines.append(f"Device:         {device.get('description') or device.get('name')}")
    if "seed" in training:
        lines.append(f"Seed:           {training['seed']}")
    return lines
