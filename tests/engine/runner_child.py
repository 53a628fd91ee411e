"""Tiny real jobs for the runner's tests, importable by them and runnable as a second process.

Usage:
    runner_child.py train HOME DATA OUTPUT EPOCHS
        runs a tiny segmentation training job through engine.jobs.runner into the job store of HOME,
        printing the job id once it is queued; each batch after the first epoch sleeps a little,
        so a test can kill the process in the middle of an epoch.
    runner_child.py predict HOME MODEL RASTER OUTPUT_DIR COUNT GO_FILE
        prints "ready", waits for GO_FILE, then runs COUNT prediction jobs of RASTER (into
        OUTPUT_DIR/0, OUTPUT_DIR/1, ...), as a second process sharing the store would.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.inference.predict import PredictOptions
from engine.jobs.runner import open_store, run, run_job, submit
from engine.jobs.specs import PredictSpec, TrainSpec
from engine.progress import CancelToken, EpochEvent, NullReporter, ProgressEvent
from engine.synthetic import write_scene
from engine.training import TrainConfig

SLOW_BATCH_S = 0.3


def write_training_data(folder: Path) -> Path:
    """Two small seeded scenes (``images/`` and ``masks/`` in ``folder``); returns ``folder``."""
    for index in range(2):
        write_scene(folder, f"scene{index}", size=(96, 96), seed=index + 1)
    return folder


def tiny_config(data: Path, output: Path, epochs: int = 1) -> TrainConfig:
    """A segmentation run small enough for a test: a 4-wide U-Net of depth 2 on 32-pixel patches."""
    return TrainConfig(
        task="segmentation",
        images=[data / "images"],
        masks=[data / "masks"],
        output=output,
        patch=32,
        batch_size=4,
        epochs=epochs,
        base_width=4,
        depth=2,
        device="cpu",
        patches_per_epoch=8,
        val_fraction=0.3,
    )


def tiny_predict_spec(model: Path, raster: Path, output_dir: Path) -> PredictSpec:
    """Prediction in 32-pixel tiles, one per batch, so it reports (and checks cancel) several times."""
    return PredictSpec(
        model, [raster], output_dir, PredictOptions(tile=32, overlap=0, batch_size=1, device="cpu")
    )


class SlowAfterFirstEpoch(NullReporter):
    """Sleeps on every batch once an epoch has ended, to widen the window for a kill mid-epoch."""

    def __init__(self) -> None:
        self.epochs_done = 0

    def on_epoch(self, event: EpochEvent) -> None:
        self.epochs_done = event.epoch

    def on_progress(self, event: ProgressEvent) -> None:
        if self.epochs_done:
            time.sleep(SLOW_BATCH_S)


def run_training(home: Path, data: Path, output: Path, epochs: int) -> None:
    with open_store(home) as store:
        job_id = submit(store, TrainSpec(tiny_config(data, output, epochs)))
        print(job_id, flush=True)
        run_job(store, job_id, SlowAfterFirstEpoch(), CancelToken())


def run_predictions(
    home: Path, model: Path, raster: Path, output_dir: Path, count: int, go_file: Path
) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + 60
    while not go_file.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{go_file} never appeared")
        time.sleep(0.01)
    with open_store(home) as store:
        for index in range(count):
            run(
                store,
                tiny_predict_spec(model, raster, output_dir / str(index)),
                NullReporter(),
                CancelToken(),
            )


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "train":
        run_training(Path(args[0]), Path(args[1]), Path(args[2]), int(args[3]))
    else:
        run_predictions(
            Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]), int(args[4]), Path(args[5])
        )


if __name__ == "__main__":
    main()
