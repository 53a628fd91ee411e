"""Speed and peak memory of ``modelai predict`` against the prototype's way of predicting.

Builds once, in a cache outside the repository (``~/.cache/modelai-bench`` or ``$MODELAI_BENCH_CACHE``),
synthetic 5-band uint16 scenes of 2000², 4000² and 8000² pixels (written strip by strip, so the
generator's own memory stays bounded) and a U-Net of base width 16 briefly trained with
`engine.training`. Each prediction runs in its own subprocess, whose peak RSS is read with
``getrusage(RUSAGE_CHILDREN)`` by a one-child wrapper process. Last, it measures blending quality
(Hann vs flat) and bf16 vs fp32 agreement on a 1024² scene.

The reference is the prototype's approach, kept here only as a yardstick: the whole raster loaded and
divided by its maximum, 128-pixel patches cut at a stride of 64 in Python loops, batches of 4, outputs
summed into float arrays and divided by a count array.

    python benchmarks/bench_inference.py                 # 2000², 4000², 8000²: about 10 min on 2 cores
    python benchmarks/bench_inference.py --sizes 2000,4000 --reference-max 4000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from engine.inference.predict import PredictOptions, predict_raster
from engine.models.file import load_model
from engine.progress import CancelToken, NullReporter
from engine.rasters.normalize import Normalization
from engine.rasters.read import open_raster, read_block, read_info
from engine.synthetic import (
    BANDS,
    CLASS_COLORS,
    CLASS_NAMES,
    CRS_CODE,
    PIXEL_SIZE,
    class_layout,
    render,
    write_scene,
)
from engine.training import TrainConfig, train

CACHE = Path(os.environ.get("MODELAI_BENCH_CACHE", Path.home() / ".cache" / "modelai-bench"))
STRIP_ROWS = 512
TIMED = "seconds after imports:"
# Runs one command and prints its exit code, wall time, the time its own process spent after its
# imports (the line it prints on stderr, see TIMED_MODELAI) and its peak RSS.
MEASURE_CHILD = f"""
import resource, subprocess, sys, time
started = time.perf_counter()
run = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
seconds = time.perf_counter() - started
after_imports = [line.split()[-1] for line in run.stderr.splitlines() if line.startswith("{TIMED}")]
print(run.returncode, seconds, after_imports[-1] if after_imports else "nan",
      resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
# `modelai` with the imports done before the clock starts: Python and torch take 1.5 s to start
# here, for both ways, which is not prediction speed and would swamp it at 2000².
TIMED_MODELAI = f"""
import sys, time
import engine.cli, engine.cli.commands, engine.inference.predict, engine.jobs.runner
started = time.perf_counter()
code = engine.cli.main(sys.argv[1:])
print("{TIMED}", time.perf_counter() - started, file=sys.stderr)
sys.exit(code)
"""


def scene(size: int) -> Path:
    """A cached synthetic scene of ``size``² pixels, generated 512 rows at a time."""
    path = CACHE / f"scene_{size}.tif"
    if path.exists():
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    transform = from_origin(500000.0, 4500000.0, PIXEL_SIZE, PIXEL_SIZE)
    profile = {
        "driver": "GTiff", "width": size, "height": size, "count": BANDS, "dtype": "uint16", "nodata": 0,
        "crs": CRS.from_string(CRS_CODE), "transform": transform, "tiled": True, "blockxsize": 256,
        "blockysize": 256, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }  # fmt: skip
    partial = path.with_suffix(".partial.tif")
    with rasterio.open(partial, "w", **profile) as dataset:
        for row in range(0, size, STRIP_ROWS):
            rows = min(STRIP_ROWS, size - row)
            dataset.write(render(class_layout(rows, size, rng), rng), window=Window(0, row, size, rows))
    partial.replace(path)
    return path


def model() -> Path:
    """A cached U-Net (base width 16, depth 4) trained briefly with `engine.training` on two
    synthetic scenes: speed does not depend on the weights, but the quality figures need a model
    whose outputs are confident and depend on context."""
    path = CACHE / "unet16-trained.safetensors"
    if path.exists():
        return path
    for index in range(2):
        write_scene(CACHE / "train", f"train{index}", size=(512, 512), seed=index)
    config = TrainConfig(
        task="segmentation", images=[CACHE / "train" / "images"], masks=[CACHE / "train" / "masks"],
        output=path, base_width=16, depth=4, epochs=3, patch=128, batch_size=8, patches_per_epoch=160,
        device="cpu", class_names=list(CLASS_NAMES), class_colors=list(CLASS_COLORS),
        checkpoint_dir=CACHE / "checkpoints",
    )  # fmt: skip
    train(config)
    return path


@dataclass
class Timing:
    """One command's wall time, the part of it after its imports, and its peak RSS in MB."""

    seconds: float
    after_imports: float
    rss_mb: float


def measure(command: list[str]) -> Timing:
    """Runs ``command`` in a fresh process and times it; exits on failure."""
    output = subprocess.run(
        [sys.executable, "-c", MEASURE_CHILD, *command], capture_output=True, text=True, check=True
    )
    code, seconds, after_imports, max_rss_kb = output.stdout.split()
    if code != "0":
        sys.exit(f"benchmark command failed ({code}): {' '.join(command)}")
    return Timing(float(seconds), float(after_imports), int(max_rss_kb) / 1024)


def reference_blend(network: torch.nn.Module, image: np.ndarray) -> np.ndarray:
    """The prototype's tiling: 128-px patches at stride 64 in Python loops, batches of 4, class
    probabilities summed into a float array and divided by a count array."""
    _, height, width = image.shape
    summed: np.ndarray | None = None
    count = np.zeros((height, width), dtype=np.float32)
    patch, stride = 128, 64
    rows = sorted({*range(0, height - patch + 1, stride), height - patch})
    cols = sorted({*range(0, width - patch + 1, stride), width - patch})
    corners = [(r, c) for r in rows for c in cols]
    with torch.no_grad():
        for start in range(0, len(corners), 4):
            batch = corners[start : start + 4]
            patches = np.stack([image[:, r : r + patch, c : c + patch] for r, c in batch])
            probabilities = torch.softmax(network(torch.from_numpy(patches)), dim=1).numpy()
            if summed is None:
                summed = np.zeros((probabilities.shape[1], height, width), dtype=np.float32)
            for (r, c), values in zip(batch, probabilities, strict=True):
                summed[:, r : r + patch, c : c + patch] += values
                count[r : r + patch, c : c + patch] += 1
    return summed / count


def reference_predict(model_path: Path, raster: Path, output: Path) -> None:
    """The prototype's way: whole raster in memory, divided by its max, `reference_blend`."""
    started = time.perf_counter()
    network, _ = load_model(model_path, "cpu")
    with rasterio.open(raster) as dataset:
        image = dataset.read().astype(np.float32)
        profile = dataset.profile
    image /= image.max()
    classes = reference_blend(network, image).argmax(axis=0).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=255)
    with rasterio.open(output, "w", **profile) as dataset:
        dataset.write(classes, 1)
    print(TIMED, time.perf_counter() - started, file=sys.stderr)


def quality(size: int = 1024) -> None:
    """How far tiled probabilities are from one whole-raster pass (Hann vs flat blending, and the
    prototype's tiling given the same normalised input), and how often bf16 class maps agree with
    fp32 ones."""
    raster = scene(size)
    network, metadata = load_model(model(), "cpu")
    normalization = Normalization.from_dict(metadata.normalization)
    info = read_info(raster)
    with open_raster(raster) as dataset:
        block = read_block(dataset, Window(0, 0, size, size), metadata.bands, info)
    image = normalization.apply(block.data, block.valid)
    with torch.inference_mode():
        whole = torch.softmax(network(torch.from_numpy(image)[None]), dim=1)[0].numpy()

    def distance(probabilities: np.ndarray) -> str:
        """Per pixel the largest gap to the whole-raster probabilities (mean and maximum), and the share
        of pixels whose class differs: a confident network's mean gap alone rounds to zero."""
        gap = np.abs(probabilities - whole).max(axis=0)[block.valid]
        moved = (probabilities.argmax(axis=0) != whole.argmax(axis=0))[block.valid].mean()
        return (
            f"mean |p - whole-raster p| = {gap.mean():.2e}, largest {gap.max():.2e}, "
            f"class differs on {100 * moved:.3f} %"
        )

    print(f"{size}² prototype tiling (128 px, stride 64, flat): {distance(reference_blend(network, image))}")
    classes = {}
    with tempfile.TemporaryDirectory() as folder:
        for mode, precision in [("hann", "fp32"), ("flat", "fp32"), ("hann", "bf16")]:
            options = PredictOptions(precision=precision, probabilities=True, overwrite=True)
            result = predict_raster(
                model(), raster, Path(folder), options, NullReporter(), CancelToken(), weight_mode=mode
            )
            with rasterio.open(result.outputs["probabilities"]) as dataset:
                tiled = dataset.read()
            classes[mode, precision] = tiled.argmax(axis=0)
            label = f"{size}² modelai {mode} blending, {precision}"
            print(f"{label}: {distance(tiled)}")
    agreement = (classes["hann", "bf16"] == classes["hann", "fp32"])[block.valid].mean()
    print(f"{size}² bf16 class map agrees with fp32 on {100 * agreement:.3f} % of the pixels")


def run_modelai(raster: Path, folder: Path, precision: str) -> Timing:
    home = ["--home", str(folder / "home")]  # the job it records goes to a scratch job store
    command = [sys.executable, "-c", TIMED_MODELAI, *home, "predict", str(model()), str(raster)]
    return measure([*command, "-o", str(folder), "--overwrite", "--precision", precision])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="2000,4000,8000", help="comma-separated raster sides")
    parser.add_argument("--precisions", default="auto", help="modelai precisions to time, e.g. auto,bf16")
    parser.add_argument(
        "--reference-max", type=int, default=8000, help="largest size the slow reference runs on"
    )
    parser.add_argument("--reference", nargs=3, metavar=("MODEL", "RASTER", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference:
        reference_predict(*(Path(p) for p in args.reference))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    precisions = args.precisions.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cache {CACHE}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            raster = scene(size)
            row: dict[str, Timing] = {}
            for precision in precisions:
                row[precision] = run_modelai(raster, Path(folder), precision)
                print(f"{size}² modelai --precision {precision}: {describe(row[precision], size)}")
            if size <= args.reference_max:
                command = [__file__, "--reference", str(model()), str(raster), str(Path(folder) / "ref.tif")]
                row["reference"] = measure([sys.executable, *command])
                print(f"{size}² reference: {describe(row['reference'], size)}")
            rows.append((size, row))
    print_table(rows, precisions)
    quality()


def describe(timing: Timing, size: int) -> str:
    megapixels = size * size / 1e6
    return (
        f"{megapixels / timing.seconds:.2f} MPix/s whole command, {megapixels / timing.after_imports:.2f} "
        f"after imports ({timing.seconds - timing.after_imports:.1f} s of imports), {timing.rss_mb:.0f} MB"
    )


def print_table(rows: list[tuple[int, dict[str, Timing]]], precisions: list[str]) -> None:
    """Speed-ups over the reference, for the whole command and after imports, and RSS growth."""
    print(f"\n{'size':<8}{'modelai':<10}{'whole command':>26}{'after imports':>26}{'peak RSS':>10}")
    for size, row in rows:
        megapixels = size * size / 1e6
        reference = row.get("reference")
        for name in [*precisions, "reference"]:
            timing = row.get(name)
            if timing is None:
                continue
            cells = []
            for seconds, reference_seconds in [
                (timing.seconds, reference and reference.seconds),
                (timing.after_imports, reference and reference.after_imports),
            ]:
                ratio = f"{reference_seconds / seconds:5.1f}x" if reference_seconds else "      "
                cells.append(f"{megapixels / seconds:8.2f} MPix/s {ratio}")
            print(f"{size:<8}{name:<10}{cells[0]:>26}{cells[1]:>26}{timing.rss_mb:>7.0f} MB")
    for precision in precisions:
        if len(rows) > 1:
            growth = rows[-1][1][precision].rss_mb - rows[0][1][precision].rss_mb
            print(f"peak RSS growth {rows[0][0]}² → {rows[-1][0]}² ({precision}): {growth:.0f} MB")
    figures = {size: {name: vars(timing) for name, timing in row.items()} for size, row in rows}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
