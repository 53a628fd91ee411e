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
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window

from engine.inference import PredictOptions, predict_raster
from engine.model_file import load_model
from engine.normalize import Normalization
from engine.progress import CancelToken, NullReporter
from engine.raster import open_raster, read_block, read_info
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
MEASURE_CHILD = """
import resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
seconds = time.perf_counter() - started
print(code, seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
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


def measure(command: list[str]) -> tuple[float, float]:
    """Runs ``command`` in a fresh process; returns (seconds, peak RSS in MB) or exits on failure."""
    output = subprocess.run(
        [sys.executable, "-c", MEASURE_CHILD, *command], capture_output=True, text=True, check=True
    )
    code, seconds, max_rss_kb = output.stdout.split()
    if code != "0":
        sys.exit(f"benchmark command failed ({code}): {' '.join(command)}")
    return float(seconds), int(max_rss_kb) / 1024


def reference_predict(model_path: Path, raster: Path, output: Path) -> None:
    """The prototype's way: whole raster in memory, divide by max, 128-px patches at stride 64."""
    network, metadata = load_model(model_path, "cpu")
    with rasterio.open(raster) as dataset:
        image = dataset.read().astype(np.float32)
        profile = dataset.profile
    image /= image.max()
    _, height, width = image.shape
    summed = np.zeros((len(metadata.classes), height, width), dtype=np.float32)
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
            for (r, c), values in zip(batch, probabilities, strict=True):
                summed[:, r : r + patch, c : c + patch] += values
                count[r : r + patch, c : c + patch] += 1
    classes = (summed / count).argmax(axis=0).astype(np.uint8)
    profile.update(count=1, dtype="uint8", nodata=255)
    with rasterio.open(output, "w", **profile) as dataset:
        dataset.write(classes, 1)


def quality(size: int = 1024) -> None:
    """How far tiled probabilities are from one whole-raster pass (Hann vs flat blending), and how
    often bf16 class maps agree with fp32 ones."""
    raster = scene(size)
    network, metadata = load_model(model(), "cpu")
    normalization = Normalization.from_dict(metadata.normalization)
    info = read_info(raster)
    with open_raster(raster) as dataset:
        block = read_block(dataset, Window(0, 0, size, size), metadata.bands, info)
    with torch.inference_mode():
        inputs = torch.from_numpy(normalization.apply(block.data, block.valid))[None]
        whole = torch.softmax(network(inputs), dim=1)[0].numpy()
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
            difference = np.abs(tiled - whole).mean(axis=0)[block.valid].mean()
            print(f"{size}² {mode} blending, {precision}: mean |p - whole-raster p| = {difference:.5f}")
    agreement = (classes["hann", "bf16"] == classes["hann", "fp32"])[block.valid].mean()
    print(f"{size}² bf16 class map agrees with fp32 on {100 * agreement:.3f} % of the pixels")


def run_modelai(raster: Path, folder: Path, precision: str) -> tuple[float, float]:
    home = ["--home", str(folder / "home")]  # the job it records goes to a scratch job store
    command = [sys.executable, "-m", "engine", *home, "predict", str(model()), str(raster), "-o", str(folder)]
    return measure([*command, "--overwrite", "--precision", precision])


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
            megapixels = size * size / 1e6
            row: dict[str, object] = {"size": size}
            for precision in precisions:
                seconds, rss = run_modelai(raster, Path(folder), precision)
                row[precision] = (megapixels / seconds, rss)
                rate = megapixels / seconds
                print(f"{size}² modelai --precision {precision}: {rate:.2f} MPix/s, {rss:.0f} MB")
            if size <= args.reference_max:
                command = [__file__, "--reference", str(model()), str(raster), str(Path(folder) / "ref.tif")]
                seconds, rss = measure([sys.executable, *command])
                row["reference"] = (megapixels / seconds, rss)
                print(f"{size}² reference: {megapixels / seconds:.2f} MPix/s, {rss:.0f} MB")
            rows.append(row)
    print_table(rows, precisions)
    quality()


def print_table(rows: list[dict[str, object]], precisions: list[str]) -> None:
    header = (
        "size    " + "".join(f"{'modelai ' + p:>26}" for p in precisions) + f"{'reference':>22}  speed-up"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for row in rows:
        cells = "".join(f"{row[p][0]:>9.2f} MPix/s {row[p][1]:>7.0f} MB" for p in precisions)
        reference = row.get("reference")
        if reference:
            ratios = " / ".join(f"{row[p][0] / reference[0]:.1f}x" for p in precisions)
            cells += f"{reference[0]:>7.2f} MPix/s {reference[1]:>6.0f} MB  {ratios}"
        else:
            cells += f"{'(not run)':>22}"
        print(f"{row['size']:<8}{cells}")
    sizes = [row["size"] for row in rows]
    for precision in precisions:
        if len(sizes) > 1:
            growth = rows[-1][precision][1] - rows[0][precision][1]
            print(f"peak RSS growth {sizes[0]}² → {sizes[-1]}² ({precision}): {growth:.0f} MB")
    print(json.dumps({"rows": rows}, default=str))


if __name__ == "__main__":
    main()
