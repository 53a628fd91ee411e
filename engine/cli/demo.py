"""``modelai demo``: the whole job on synthetic data, in a few minutes on a CPU.

A new user sees every step work before touching their own data: scenes are generated, both models
are trained and both predict, all through the same job runner as real work (so the demo jobs show in
``modelai jobs list``), and the last lines say where every file is.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from engine.cli import EXIT_OK
from engine.cli.commands import VERBS
from engine.cli.predict import print_results
from engine.cli.terminal import TerminalReporter, format_duration
from engine.cli.train import print_result
from engine.inference.predict import PredictOptions
from engine.jobs import runner
from engine.jobs.specs import PredictSpec, TrainSpec
from engine.jobs.store import JobStore
from engine.paths import app_home
from engine.progress import CancelToken
from engine.synthetic import CLASS_COLORS, CLASS_NAMES, write_scene
from engine.training import TrainConfig

TRAIN_SCENES = 3
SCENE_SIZE = (256, 256)
TEST_SIZE = (384, 384)
# Small on purpose: seconds per epoch on a laptop CPU, yet enough to learn the synthetic classes.
QUICK = {"patch": 64, "batch_size": 8, "base_width": 8, "depth": 3, "patches_per_epoch": 64}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``demo``."""
    parser = subparsers.add_parser(
        "demo",
        help=VERBS["demo"].summary,
        description="Generate a small synthetic dataset, train a segmentation U-Net and an anomaly "
        "autoencoder on it, predict a held-out scene with both, and print where everything is.",
    )
    parser.add_argument("--workdir", type=Path, help="where to put the demo (default: <data folder>/demo)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs for each model (default %(default)s)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Runs the four demo steps as recorded jobs and prints a map of the results."""
    workdir = (args.workdir or app_home(args.home) / "demo").expanduser().resolve()
    started = time.monotonic()
    print(f"ModelAI demo in {workdir}")
    print(f"1/4  Writing {TRAIN_SCENES} synthetic 5-band scenes and a held-out test scene…")
    data = workdir / "data"
    for index in range(TRAIN_SCENES):
        write_scene(data / "train", f"scene{index}", size=SCENE_SIZE, seed=100 + index)
    test = write_scene(data / "test", "test_scene", size=TEST_SIZE, seed=7, anomalies=10)
    models, results = workdir / "models", workdir / "results"
    reporter = TerminalReporter.for_args(args)
    with runner.open_store(args.home) as store:
        print("2/4  Training a segmentation U-Net (under a minute on a CPU)…")
        unet = _train(
            store, reporter, cancel, "segmentation", data / "train", models / "unet.safetensors", args
        )
        print("3/4  Training an anomaly autoencoder on the same scenes, with no labels…")
        autoencoder = _train(
            store, reporter, cancel, "anomaly", data / "train", models / "ae.safetensors", args
        )
        print("4/4  Predicting the held-out scene with both models…")
        for model in (unet, autoencoder):
            spec = PredictSpec(
                model=model,
                rasters=[test.image],
                output_dir=results / model.stem,
                options=PredictOptions(device=args.device, overwrite=True, polygons=True),
            )
            print_results(runner.run(store, spec, reporter, cancel).predictions, spec.output_dir)
    print(f"\nDone in {format_duration(time.monotonic() - started)}. Everything is in {workdir}:")
    print(f"  training data   {data / 'train'} (images/, masks/)")
    print(f"  test scene      {test.image} (true anomalies: {test.anomaly_mask})")
    print(f"  models          {unet}, {autoencoder}   (modelai models show FILE)")
    print(f"  predictions     {results}/unet, {results}/ae   (open the .tif files in QGIS; .qml = legend)")
    print("  polygons        the .gpkg files there: one feature per region, styled for QGIS")
    print("  job history     modelai jobs list")
    return EXIT_OK


def _train(
    store: JobStore,
    reporter: TerminalReporter,
    cancel: CancelToken,
    task: str,
    folder: Path,
    output: Path,
    args: argparse.Namespace,
) -> Path:
    segmentation = task == "segmentation"
    config = TrainConfig(
        task=task,
        images=[folder / "images"],
        masks=[folder / "masks"] if segmentation else None,
        output=output,
        epochs=args.epochs,
        lr=1e-2 if segmentation else 3e-3,
        device=args.device,
        class_names=list(CLASS_NAMES) if segmentation else None,
        class_colors=list(CLASS_COLORS) if segmentation else None,
        overwrite=True,
        **QUICK,
    )
    result = runner.run(store, TrainSpec(config), reporter, cancel).training
    print_result(result)
    return result.model_path
