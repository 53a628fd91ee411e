"""Patches that see rare classes: where each class lies in the training part, and class weights.

On small, imbalanced data a class covering 5 % of the pixels is absent from most random patches,
so the network learns to ignore it. A census of the training masks (cells of a quarter patch that
hold each class) lets a share of the patches be centred on a cell of a class chosen uniformly, and
its pixel counts give cross-entropy weights that lean toward rare classes without swamping the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from rasterio.windows import Window

from engine.datasets import IGNORE_INDEX, Region
from engine.patches import PatchReader

# Class weights are (frequency ** -WEIGHT_POWER), scaled to average 1 over pixels and clipped so that
# no class weighs more than MAX_WEIGHT_RATIO times another: plain inverse frequency over-predicts rare
# classes on noisy labels, and balanced sampling already raises their share.
WEIGHT_POWER = 0.5
MAX_WEIGHT_RATIO = 10.0


@dataclass(frozen=True)
class ClassCensus:
    """Labelled training pixels per class id, and the cells (region index, row, col) holding each class."""

    pixels: np.ndarray
    cells: dict[int, np.ndarray]
    cell: int

    def loss_weights(self) -> torch.Tensor:
        """Cross-entropy weights per class id; classes absent from the training part get weight 1."""
        frequency = self.pixels / max(1, self.pixels.sum())
        present = frequency > 0
        weights = np.ones_like(frequency)
        weights[present] = frequency[present] ** -WEIGHT_POWER
        weights[present] /= (frequency[present] * weights[present]).sum()
        weights[present] = np.clip(weights[present], None, weights[present].min() * MAX_WEIGHT_RATIO)
        return torch.tensor(weights, dtype=torch.float32)


def class_census(reader: PatchReader, regions: Sequence[Region], num_classes: int) -> ClassCensus:
    """Reads the training masks once, a strip of cells at a time, and notes where each class lies."""
    cell = max(8, reader.patch // 4)
    pixels = np.zeros(num_classes, dtype=np.int64)
    found: dict[int, list[np.ndarray]] = {}
    for index, region in enumerate(regions):
        starts = np.arange(0, region.width, cell)
        for row in range(region.row, region.row + region.height, cell):
            height = min(cell, region.row + region.height - row)
            target = reader.read_target(region, Window(region.col, row, region.width, height))
            labelled = target[target != IGNORE_INDEX]
            pixels += np.bincount(labelled, minlength=IGNORE_INDEX)[:num_classes]
            for class_id in np.flatnonzero(np.bincount(labelled, minlength=num_classes)):
                columns = np.logical_or.reduceat((target == class_id).any(axis=0), starts)
                hits = region.col + starts[columns]
                found.setdefault(int(class_id), []).append(
                    np.stack([np.full_like(hits, index), np.full_like(hits, row), hits], axis=1)
                )
    cells = {class_id: np.concatenate(parts) for class_id, parts in found.items()}
    return ClassCensus(pixels, cells, cell)


class ClassFocus:
    """Picks, for a ``share`` of the patches, a window around a cell of a class chosen uniformly.

    A plain object (not a closure), so DataLoader workers can receive it.
    """

    def __init__(self, census: ClassCensus, regions: Sequence[Region], patch: int, share: float) -> None:
        self.census = census
        self.regions = list(regions)
        self.patch = patch
        self.share = share
        self.classes = sorted(census.cells)

    def __call__(self, rng: np.random.Generator) -> tuple[Region, int, int] | None:
        if len(self.classes) < 2 or rng.random() >= self.share:
            return None
        cells = self.census.cells[self.classes[int(rng.integers(len(self.classes)))]]
        index, cell_row, cell_col = (int(v) for v in cells[int(rng.integers(len(cells)))])
        region = self.regions[index]
        centre = self.census.cell // 2

        def start(cell_start: int, origin: int, extent: int) -> int:
            wanted = cell_start + centre - int(rng.integers(0, self.patch))
            return int(np.clip(wanted, origin, origin + max(0, extent - self.patch)))

        return region, start(cell_row, region.row, region.height), start(cell_col, region.col, region.width)
