"""Start a U-Net from its per-pixel path, fitted in a few seconds on sampled pixels, before it trains.

On a spectral task (clouds, water, crops in multispectral bands) a small per-pixel network fitted on
a few hundred thousand pixels beats a U-Net trained for minutes on a 2-core CPU: on the Landsat
cloud task 0.75 IoU after seconds against 0.64 after 2 minutes (docs/training_recipe.md). So the
U-Net carries such a path (`engine.models.unet.UNet`, ``pixel_width``), it is fitted first, and the
U-Net's own head starts at zero: before the first training step the network answers what the
per-pixel classifier answers, and training adds what spatial context adds.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.datasets import IGNORE_INDEX

# Drawn like training patches (class-balanced), from epoch 0, which training itself never draws.
POOL_PATCHES = 32
STEPS = 1000
PIXELS_PER_STEP = 4096
LR = 1e-2
POOL_CHUNK = 65536
# The start helps where pixels alone tell the classes apart (bands of a spectrum); where a class is
# a shape (buildings in one panchromatic band) a per-pixel answer is a poor place to start from.
MIN_START_IOU = 0.5
# A class the sampled pixels miss still starts within reach (log 0.01), not at minus infinity.
MIN_START_SHARE = 0.01


@dataclass(frozen=True)
class PixelFit:
    """Whether the network starts from the fitted per-pixel path (the bands alone find every class),
    and a line for the user saying which."""

    started: bool
    note: str


def silence_pixel_path(model: nn.Module) -> None:
    """Make the per-pixel path add nothing, for a run that starts from an earlier model's weights: that
    model's answer stays its own until training teaches the path (its weights replace these if it had one)."""
    if getattr(model, "pixel", None) is not None:
        with torch.no_grad():
            nn.init.zeros_(model.pixel[-1].weight)
            nn.init.zeros_(model.pixel[-1].bias)


def start_from_class_shares(model: nn.Module, classes: torch.Tensor) -> None:
    """Make the per-pixel path add the log of each class's share of ``classes`` to every pixel, and
    nothing else: the network starts answering how common each class is, as a detector's prior does.

    A randomly initialised head answers about evenly; on a rare class (buildings, 7 % of the drawn
    pixels) the first steps then only unlearn false alarms (measured in docs/training_recipe.md).
    """
    counts = torch.bincount(classes.cpu(), minlength=model.pixel[-1].bias.numel()).float()
    shares = (counts / counts.sum()).clamp(min=MIN_START_SHARE)
    with torch.no_grad():
        nn.init.zeros_(model.pixel[-1].weight)
        model.pixel[-1].bias.copy_(torch.log(shares))


def pixel_pool(
    patches: Sequence[dict[str, torch.Tensor]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every labelled pixel of the first :data:`POOL_PATCHES` patches (training patches: `RandomPatches`):
    ``(C, N)`` values and ``(N,)`` classes."""
    values, classes = [], []
    for index in range(min(POOL_PATCHES, len(patches))):
        patch = patches[index]
        labelled = patch["target"] != IGNORE_INDEX
        values.append(patch["image"][:, labelled])
        classes.append(patch["target"][labelled].long())
    return torch.cat(values, dim=1).to(device), torch.cat(classes).to(device)


def fit_pixel_path(
    model: nn.Module,
    patches: Sequence[dict[str, torch.Tensor]],
    device: torch.device,
    class_weights: torch.Tensor | None,
    seed: int,
    class_names: Sequence[str],
) -> PixelFit | None:
    """Fit ``model.pixel`` on sampled pixels; start from it (``model.head`` zeroed) only if it finds
    every class, else start from the class shares. None when the model has no per-pixel path or the
    patches hold no labelled pixel."""
    if getattr(model, "pixel", None) is None:
        return None
    started = time.perf_counter()
    values, classes = pixel_pool(patches, device)
    if not len(classes):
        return None
    path = model.pixel.to(device)
    weights = class_weights.to(device) if class_weights is not None else None
    optimizer = torch.optim.Adam(path.parameters(), lr=LR)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    side = int(PIXELS_PER_STEP**0.5)
    for _ in range(STEPS):
        chosen = torch.randint(len(classes), (side * side,), generator=generator).to(device)
        # The 1x1 convolutions see the pixels as one square image, as they will in the network.
        images = values[:, chosen].reshape(1, -1, side, side)
        loss = F.cross_entropy(path(images), classes[chosen].reshape(1, side, side), weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    scores = pool_ious(path, values, classes)
    found = ", ".join(f"{class_names[index]} {score:.2f}" for index, score in scores.items())
    fitted = (
        f"on {len(classes):,} labelled pixels of {min(POOL_PATCHES, len(patches))} patches in"
        f" {time.perf_counter() - started:.1f} s (IoU on them: {found})"
    )
    if min(scores.values()) < MIN_START_IOU:
        start_from_class_shares(model, classes)
        return PixelFit(
            False,
            f"No per-pixel start: the bands alone do not find every class {fitted}, so the U-Net starts"
            " from the class shares of those pixels and learns the per-pixel path with the rest.",
        )
    with torch.no_grad():
        nn.init.zeros_(model.head.weight)
        nn.init.zeros_(model.head.bias)
    return PixelFit(True, f"Per-pixel start: fitted {fitted}.")


def pool_ious(path: nn.Module, values: torch.Tensor, classes: torch.Tensor) -> dict[int, float]:
    """IoU of the per-pixel path's classes on the pool, for every class the pool holds."""
    with torch.no_grad():
        predicted = torch.cat(
            [path(chunk.T[:, :, None, None]).argmax(1).flatten() for chunk in values.split(POOL_CHUNK, dim=1)]
        )
    scores = {}
    for index in classes.unique().tolist():
        truth, answer = classes == index, predicted == index
        scores[index] = float((truth & answer).sum() / (truth | answer).sum())
    return scores
