"""onnxruntime against ModelAI's torch path on the CPU: same model, same tiles, side by side.

    python benchmarks/bench_onnx.py                   # base-width-16 U-Net, 4 bands, 512² tiles
    python benchmarks/bench_onnx.py --threads 1 --rounds 5

Both run the same exported model on the same normalised tiles, one tile per pass (what
`engine.inference.forward` does on a CPU for 512² tiles): torch through `TileForward` (batch norms folded,
channels-last, inference mode) and onnxruntime through the file `modelai models export-onnx` writes
(graph optimisations on). Rounds alternate between the two so that a machine busy with other work
slows both alike; the ratio of medians is the figure to read, not the absolute times. It also
prints the largest difference between the two outputs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from engine.export.onnx_file import export_onnx
from engine.inference.forward import TileForward
from engine.inference.heads import class_probabilities
from engine.models import build_model
from engine.models.file import load_model, save_model
from engine.models.metadata import ClassInfo, ModelMetadata
from engine.progress import NullReporter


def write_model(path: Path, bands: int, base_width: int) -> Path:
    torch.manual_seed(0)
    hyperparameters = {"in_channels": bands, "num_classes": 4, "base_width": base_width, "depth": 4}
    network = build_model("unet", hyperparameters)
    metadata = ModelMetadata(
        task="segmentation",
        architecture="unet",
        hyperparameters=hyperparameters,
        bands=list(range(1, bands + 1)),
        input_dtype="uint16",
        normalization={"method": "standard", "offset": [0.0] * bands, "scale": [1.0] * bands, "clip": False},
        patch_size=256,
        pixel_size=[10.0, 10.0],
        crs="EPSG:32632",
        classes=[ClassInfo(i, f"class {i}", "#808080") for i in range(4)],
        anomaly=None,
        training={},
    )
    return save_model(path, network, metadata)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--tiles", type=int, default=4, help="tiles per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--base-width", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bands = 4
    with tempfile.TemporaryDirectory() as folder:
        model_path = write_model(Path(folder) / "unet.safetensors", bands, args.base_width)
        onnx_path = export_onnx(model_path, Path(folder) / "unet.onnx", tile=args.tile).path
        network, _ = load_model(model_path)
        forward = TileForward(network, torch.device("cpu"), None, 1, class_probabilities, NullReporter())
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        tiles = np.random.default_rng(0).normal(size=(args.tiles, bands, args.tile, args.tile))
        tiles = tiles.astype(np.float32)

        def run_torch() -> np.ndarray:
            return forward(tiles)

        def run_onnx() -> np.ndarray:
            return np.concatenate([session.run(None, {"input": tile[None]})[0] for tile in tiles])

        difference = float(np.abs(run_torch() - run_onnx()).max())  # also the warm-up
        times: dict[str, list[float]] = {"torch": [], "onnxruntime": []}
        for _ in range(args.rounds):
            for name, run in (("torch", run_torch), ("onnxruntime", run_onnx)):
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
    megapixels = args.tiles * args.tile**2 / 1e6
    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}"
        f"; U-Net base width {args.base_width}, {args.tiles} tiles of {args.tile} px"
    )
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:12s} median {median:6.2f} s  {megapixels / median:5.2f} MPix/s  (rounds: "
            + ", ".join(f"{v:.2f}" for v in values)
            + ")"
        )
    ratio = statistics.median(times["torch"]) / statistics.median(times["onnxruntime"])
    print(f"  onnxruntime is {ratio:.2f}x torch's speed; largest output difference {difference:.2e}")


if __name__ == "__main__":
    main()
