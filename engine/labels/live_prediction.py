"""The model's map and its doubt for the part of the raster on screen, after every training epoch.

While a label-training job runs, the window shows what the network predicts where the person looks,
and where it is unsure: "label here next". This reads the visible window of the raster (decimated to
at most ``max_side`` pixels when zoomed out), runs the network of the latest checkpoint (or a finished
model file) on it, and returns the class ids and an uncertainty in [0, 1]: one minus the margin
between the two most likely classes, or the entropy of the class probabilities scaled by its maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rasterio.windows import Window
from torch import nn

from engine.labels.tiles import UNLABELLED
from engine.models import build_model
from engine.models.file import load_checkpoint, load_model
from engine.rasters.normalize import Normalization
from engine.rasters.preview import read_window
from engine.rasters.read import RasterInfo
from engine.training.config import DEFAULT_DEPTH, DEFAULT_WIDTH

MEASURES = ("margin", "entropy")
LIVE_MAX_SIDE = 512


@dataclass(frozen=True)
class WindowPrediction:
    """Classes (uint8, 255 where the raster has no data) and uncertainty (float32, 0 sure, 1 unsure)
    of a window of the raster, at ``classes.shape`` pixels covering ``window`` (full-resolution pixels)."""

    window: Window
    classes: np.ndarray
    uncertainty: np.ndarray


def margin_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 - (highest - second highest probability) per pixel, for (classes, rows, cols) probabilities."""
    top_two = np.sort(probabilities, axis=0)[-2:]
    return (1.0 - (top_two[1] - top_two[0])).astype(np.float32)


def entropy_uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """Entropy of the class probabilities divided by its maximum (log of the class count)."""
    clipped = np.clip(probabilities, 1e-12, 1.0)
    entropy = -(clipped * np.log(clipped)).sum(axis=0)
    return (entropy / math.log(probabilities.shape[0])).astype(np.float32)


def load_network(path: Path) -> tuple[nn.Module, list[int], Normalization]:
    """A segmentation network, its bands and normalisation, from a ``last.ckpt`` or a model file.

    Raises:
        ModelFileError: the file is damaged or not a ModelAI checkpoint or model.
    """
    if path.suffix == ".safetensors":
        model, metadata = load_model(path)
        return model, list(metadata.bands), Normalization.from_dict(metadata.normalization)
    state = load_checkpoint(path)
    weights = state["model"]
    hyperparameters = {
        "in_channels": len(state["bands"]),
        "num_classes": int(weights["head.weight"].shape[0]),
        "base_width": int(state["config"]["base_width"] or DEFAULT_WIDTH["segmentation"]),
        "depth": int(state["config"]["depth"] or DEFAULT_DEPTH["segmentation"]),
    }
    if "pixel.0.weight" in weights:
        hyperparameters["pixel_width"] = int(weights["pixel.0.weight"].shape[0])
    model = build_model("unet", hyperparameters)
    model.load_state_dict(weights)
    return model.eval(), list(state["bands"]), Normalization.from_dict(state["normalization"])


def predict_window(
    network: Path,
    info: RasterInfo,
    window: Window,
    max_side: int = LIVE_MAX_SIDE,
    measure: str = "margin",
) -> WindowPrediction:
    """Classes and uncertainty of ``window`` of the raster (see the module).

    Raises:
        ModelFileError: ``network`` cannot be loaded.
        RasterError: the raster cannot be read.
    """
    if measure not in MEASURES:
        raise ValueError(f"Unknown uncertainty {measure!r}; choose one of {', '.join(MEASURES)}.")
    model, bands, normalization = load_network(network)
    factor = max(1.0, max(window.width, window.height) / max_side)
    shape = (max(1, round(window.height / factor)), max(1, round(window.width / factor)))
    view = read_window(info, bands, window, shape)
    valid = view.valid
    inputs = torch.from_numpy(normalization.apply(view.data, valid))[None]
    multiple = getattr(model, "size_multiple", 1)
    pad_rows, pad_cols = -shape[0] % multiple, -shape[1] % multiple
    inputs = F.pad(inputs, (0, pad_cols, 0, pad_rows), mode="replicate" if min(shape) > 1 else "constant")
    with torch.inference_mode():
        logits = model(inputs)[0, :, : shape[0], : shape[1]]
    probabilities = logits.softmax(dim=0).numpy()
    uncertainty = (
        margin_uncertainty(probabilities) if measure == "margin" else entropy_uncertainty(probabilities)
    )
    classes = probabilities.argmax(axis=0).astype(np.uint8)
    classes[~valid] = UNLABELLED
    uncertainty[~valid] = 0.0
    return WindowPrediction(window, classes, uncertainty)
