"""Training throughput (patches/s) of ``engine.training`` against the prototype's naive loop.

Both train the same network (U-Net, base width 16, depth 4) on 128-pixel patches of the same
synthetic 5-band uint16 scene (cached in ``~/.cache/modelai-bench`` or ``$MODELAI_BENCH_CACHE``),
each in its own process, alternating, so that a busy machine slows both alike. The rate is timed
after imports and set-up, over the training steps only (data loading included).

The reference is the prototype's loop, kept here only as a yardstick: the whole raster loaded and
divided by its maximum, random crops cut in Python, batches of 4, fp32 in the default memory
layout, plain cross-entropy, Adam.

    python benchmarks/bench_training.py                      # 3 rounds of 192 patches each way
    python benchmarks/bench_training.py --rounds 1 --patches 96

It also prints the floor under any fp32 loop on this CPU: the floating-point operations of one
training step of this network (counted by torch's FlopCounterMode) at the rate this CPU multiplies
large matrices, so that a ratio short of a target can be told apart from a loop that wastes time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from engine.device import autocast_dtype, cpu_runs_bf16_natively, describe_cpu_vectors
from engine.models import build_model
from engine.progress import NullReporter, ProgressEvent
from engine.rasters.read import open_raster
from engine.synthetic import BANDS, CLASS_NAMES, write_scene
from engine.training import TrainConfig, train

CACHE = Path(os.environ.get("MODELAI_BENCH_CACHE", Path.home() / ".cache" / "modelai-bench"))
PATCH = 128
NETWORK = {"base_width": 16, "depth": 4}


def scene() -> Path:
    folder = CACHE / "training"
    if not (folder / "images" / "scene.tif").exists():
        write_scene(folder, "scene", size=(768, 768), seed=3)
    return folder


def naive_training(
    image: np.ndarray,
    mask: np.ndarray,
    model: torch.nn.Module,
    steps: int | None,
    seconds: float | None,
    seed: int = 0,
) -> tuple[int, float]:
    """The prototype's loop on an image already divided by its maximum: random 128-pixel crops cut
    in Python, batches of 4, fp32, plain cross-entropy, Adam at 1e-3, for ``steps`` batches or
    ``seconds``; ``seed`` draws the crops. Returns the steps after the first one and the seconds they
    took."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    model.train()
    step, started = 0, time.perf_counter()
    while (steps is None or step <= steps) and (seconds is None or time.perf_counter() - started < seconds):
        if step == 1:
            started = time.perf_counter()
        xs, ys = [], []
        for _ in range(4):
            row = rng.integers(0, image.shape[1] - PATCH + 1)
            col = rng.integers(0, image.shape[2] - PATCH + 1)
            xs.append(image[:, row : row + PATCH, col : col + PATCH])
            ys.append(mask[row : row + PATCH, col : col + PATCH])
        optimizer.zero_grad()
        loss = F.cross_entropy(model(torch.from_numpy(np.stack(xs))), torch.from_numpy(np.stack(ys)))
        loss.backward()
        optimizer.step()
        step += 1
    return step - 1, time.perf_counter() - started


def prototype(patches: int) -> float:
    """Patches per second of the prototype's loop (after one warm-up batch)."""
    with open_raster(scene() / "images" / "scene.tif") as dataset:
        image = dataset.read().astype(np.float32)
    with open_raster(scene() / "masks" / "scene.tif") as dataset:
        mask = dataset.read(1).astype(np.int64)
    mask[mask == 255] = 0
    image /= image.max()
    model = build_model("unet", {"in_channels": image.shape[0], "num_classes": len(CLASS_NAMES), **NETWORK})
    steps, seconds = naive_training(image, mask, model, patches // 4, None)
    return steps * 4 / seconds


def patch_flops(in_channels: int, classes: int) -> int:
    """Floating-point operations of training on one patch (forward and backward; linear in the batch)."""
    model = build_model("unet", {"in_channels": in_channels, "num_classes": classes, **NETWORK})
    image = torch.zeros(1, in_channels, PATCH, PATCH)
    target = torch.zeros(1, PATCH, PATCH, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(image), target).backward()
    return counter.get_total_flops()


def matrix_rate(size: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of this CPU on large fp32 matrix products: what its best convolution kernels approach."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started)


class _RateReporter(NullReporter):
    def __init__(self) -> None:
        self.rate = 0.0

    def on_progress(self, event: ProgressEvent) -> None:
        if event.stage == "train":
            self.rate = event.rate or 0.0


def modelai(patches: int, batch_size: int, precision: str) -> float:
    """Patches per second of `engine.training.train` with its defaults and this batch size."""
    folder = scene()
    with tempfile.TemporaryDirectory() as out:
        config = TrainConfig(
            task="segmentation",
            images=[folder / "images"],
            masks=[folder / "masks"],
            output=Path(out) / "m.safetensors",
            patch=PATCH,
            batch_size=batch_size,
            epochs=1,
            patches_per_epoch=patches,
            precision=precision,
            val_fraction=0.1,
            **NETWORK,
        )
        reporter = _RateReporter()
        train(config, reporter)
    return reporter.rate * batch_size


def cpu_line(precision: str) -> str:
    """The CPU facts every training figure needs: threads, vector extensions, the precision it runs."""
    return (
        f"CPU: {os.cpu_count()} threads, {describe_cpu_vectors()}; native bf16: "
        f"{cpu_runs_bf16_natively()}; precision {precision} -> {autocast_dtype('cpu', precision)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--patches", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--child", choices=("prototype", "modelai"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rate = (
            prototype(args.patches)
            if args.child == "prototype"
            else modelai(args.patches, args.batch_size, args.precision)
        )
        print(json.dumps({"rate": rate}))
        return
    scene()
    print(cpu_line(args.precision))
    rates: dict[str, list[float]] = {"prototype": [], "modelai": []}
    for round_ in range(args.rounds):
        for child in rates:
            command = [sys.executable, __file__, "--child", child, "--patches", str(args.patches)]
            command += ["--batch-size", str(args.batch_size), "--precision", args.precision]
            started = time.perf_counter()
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rate = json.loads(output.strip().splitlines()[-1])["rate"]
            rates[child].append(rate)
            print(f"round {round_ + 1} {child:9s}: {rate:6.2f} patches/s "
                  f"(process {time.perf_counter() - started:5.1f} s)", flush=True)  # fmt: skip
    ratios = [m / p for m, p in zip(rates["modelai"], rates["prototype"], strict=True)]
    print(f"modelai / prototype patches/s, per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}")  # fmt: skip
    flops = patch_flops(BANDS, len(CLASS_NAMES))
    rate = matrix_rate()
    ceiling = rate / flops
    print(f"one patch's training step: {flops / 1e9:.2f} GFLOP; large fp32 matrix products on this CPU: "
          f"{rate / 1e9:.1f} GFLOP/s, so no fp32 loop exceeds {ceiling:.1f} patches/s "
          f"({ceiling / statistics.median(rates['prototype']):.2f}x the prototype's median)")  # fmt: skip


if __name__ == "__main__":
    main()
