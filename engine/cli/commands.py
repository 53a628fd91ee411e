"""The subcommands, in the order ``modelai --help`` shows them, each imported only when it runs.

A verb's module imports torch and rasterio (seconds), so ``modelai --help`` or a mistyped verb
would wait for them if the parser imported every verb. The top-level parser lists the verbs from
this table and imports only the module of the verb on the command line.
"""

from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Verb:
    """Where a verb's ``register(subparsers)`` lives and the line ``modelai --help`` shows for it."""

    module: str
    summary: str


VERBS: dict[str, Verb] = {
    "train": Verb("engine.cli.train", "train a segmentation U-Net or an anomaly autoencoder on GeoTIFFs"),
    "predict": Verb("engine.cli.predict", "apply a trained model to rasters (class map or anomaly heat map)"),
    "jobs": Verb("engine.cli.jobs_cmd", "list, inspect, rerun, cancel or resume recorded jobs"),
    "models": Verb("engine.cli.models_cmd", "inspect model files, export them to ONNX for QGIS Deepness"),
    "demo": Verb(
        "engine.cli.demo",
        "generate synthetic scenes, train both models, predict: the whole job in a few minutes",
    ),
}


def register(subparsers: argparse._SubParsersAction, chosen: str | None) -> None:
    """Registers the chosen verb in full and every other one as a name with its summary."""
    for name, verb in VERBS.items():
        if name == chosen:
            importlib.import_module(verb.module).register(subparsers)
        else:
            subparsers.add_parser(name, help=verb.summary, add_help=False)
