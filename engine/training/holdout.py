"""What validation holds out: a part that holds enough of every class to rank epochs.

The validation score decides which epoch a model keeps, so a held-out part with almost none of a
rare class ranks epochs by noise. In the quality benchmark's Landsat scene the bottom strip (the
fixed choice so far) holds 0.1 % cloud against 3 % in the whole training scene, while its left
strip holds 7.7 %. So where the usual part (the bottom strip of a tall image, the right strip of a
wide one; with several images a seeded draw) holds under a quarter of some class's share of the
whole, the side (or the seeded draw of images) whose class shares come closest to the whole's is
held out instead. The usual part is kept otherwise: on the building task, moving a strip that held
enough buildings to the side that matched best trained worse maps (docs/training_recipe.md).
``--val-side`` fixes the side; ``end`` is the usual part always, which runs stored before this
choice keep, so that they resume as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rasterio.windows import Window

from engine.datasets import IGNORE_INDEX, MASK_SCAN_ROWS, DataSplit, ImagePair, Region, mask_classes
from engine.errors import DatasetError
from engine.rasters.read import open_raster, read_block

SIDES = ("bottom", "right", "top", "left")
VAL_SIDES = ("auto", "end", *SIDES)
# Seeded draws of held-out images compared when there are several images; the first is the usual one.
IMAGE_DRAWS = 32
# The usual part is kept while every class has at least this share of its share of the whole there.
ENOUGH_MATCH = 0.25


@dataclass(frozen=True)
class _Strip:
    side: str
    train: Region
    validation: Region
    where: str


def split_validation(
    pairs: Sequence[ImagePair], val_fraction: float, patch: int, seed: int, side: str = "auto"
) -> DataSplit:
    """Holds out ``val_fraction`` of the images, or with one image a strip along one of its sides.

    A gap of a quarter patch separates a strip from the training part, so neighbouring, nearly
    identical pixels do not end up on both sides. ``side`` is one of VAL_SIDES; a named side only
    applies to a single image.

    Raises:
        DatasetError: a single image is too small to give both a training part and a strip.
    """
    if len(pairs) > 1:
        return _hold_out_images(pairs, val_fraction, seed, by_classes=side == "auto")
    pair = pairs[0]
    end = "bottom" if pair.image.height >= pair.image.width else "right"
    wanted = end if side in ("auto", "end") else side
    strips = {strip.side: strip for strip in _strips(pair, val_fraction, patch)}
    if wanted not in strips:
        info = pair.image
        raise DatasetError(
            f"{info.path} ({info.width}×{info.height}) is too small to hold out {val_fraction:.0%} for "
            "validation and still train on the rest. Add a second image or lower the validation fraction."
        )
    if side != "auto" or pair.mask is None:
        chosen, missing = strips[wanted], ()
    else:
        ordered = [strips[wanted], *(strip for strip in strips.values() if strip.side != wanted)]
        counts = _strip_class_counts(pair, ordered)
        whole = _as_counts(pair.mask.class_pixels)
        best = _choose(counts, whole)
        chosen, missing = ordered[best], _missing(counts[best], whole)
    description = f"validation: {chosen.where} of {pair.image.path.name}"
    return DataSplit([chosen.train], [chosen.validation], description, missing)


def _hold_out_images(
    pairs: Sequence[ImagePair], val_fraction: float, seed: int, by_classes: bool
) -> DataSplit:
    held_out = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    rng = np.random.default_rng(seed)
    draws = [set(rng.permutation(len(pairs))[:held_out].tolist()) for _ in range(IMAGE_DRAWS)]
    chosen, missing = draws[0], ()
    if by_classes and all(pair.mask is not None for pair in pairs):
        per_image = [_as_counts(pair.mask.class_pixels) for pair in pairs if pair.mask is not None]
        whole = _sum_counts(per_image)
        held = [_sum_counts([per_image[i] for i in draw]) for draw in draws]
        best = _choose(held, whole)
        chosen, missing = draws[best], _missing(held[best], whole)
    regions = [Region(pair, 0, 0, pair.image.height, pair.image.width) for pair in pairs]
    names = ", ".join(pairs[i].image.path.name for i in sorted(chosen))
    return DataSplit(
        [region for i, region in enumerate(regions) if i not in chosen],
        [region for i, region in enumerate(regions) if i in chosen],
        f"validation images: {names}",
        missing,
    )


def _strips(pair: ImagePair, val_fraction: float, patch: int) -> list[_Strip]:
    """The strips along each side that leave enough of the image to train on, in SIDES order."""
    height, width = pair.image.height, pair.image.width
    gap = patch // 4
    strips = []
    for side in SIDES:
        size = height if side in ("bottom", "top") else width
        strip = max(1, round(size * val_fraction))
        kept = size - strip - gap
        if kept < min(patch, size) // 2 or kept < 8:
            continue
        if side == "bottom":
            train, validation = Region(pair, 0, 0, kept, width), Region(pair, size - strip, 0, strip, width)
        elif side == "top":
            train, validation = Region(pair, strip + gap, 0, kept, width), Region(pair, 0, 0, strip, width)
        elif side == "right":
            train, validation = Region(pair, 0, 0, height, kept), Region(pair, 0, size - strip, height, strip)
        else:
            train, validation = Region(pair, 0, strip + gap, height, kept), Region(pair, 0, 0, height, strip)
        unit = "rows" if side in ("bottom", "top") else "columns"
        strips.append(_Strip(side, train, validation, f"the {side} {strip} {unit}"))
    return strips


def _strip_class_counts(pair: ImagePair, strips: Sequence[_Strip]) -> list[np.ndarray]:
    """Labelled pixels per class id in each strip's validation part, from one pass over the mask."""
    mask = pair.mask
    assert mask is not None, "class counts need a mask"
    counts = [np.zeros(IGNORE_INDEX, dtype=np.int64) for _ in strips]
    with open_raster(mask.raster.path) as dataset:
        for row in range(0, mask.raster.height, MASK_SCAN_ROWS):
            rows = min(MASK_SCAN_ROWS, mask.raster.height - row)
            block = read_block(dataset, Window(0, row, mask.raster.width, rows), [1], mask.raster)
            target = mask_classes(block, mask)
            for strip, total in zip(strips, counts, strict=True):
                region = strip.validation
                top, bottom = max(region.row, row) - row, min(region.row + region.height, row + rows) - row
                if top < bottom:
                    part = target[top:bottom, region.col : region.col + region.width]
                    total += np.bincount(part[part != IGNORE_INDEX], minlength=IGNORE_INDEX)[:IGNORE_INDEX]
    return counts


def _as_counts(class_pixels: dict[int, int]) -> np.ndarray:
    counts = np.zeros(IGNORE_INDEX, dtype=np.int64)
    for class_id, pixels in class_pixels.items():
        counts[class_id] = pixels
    return counts


def _sum_counts(parts: Sequence[np.ndarray]) -> np.ndarray:
    return np.sum(parts, axis=0) if parts else np.zeros(IGNORE_INDEX, dtype=np.int64)


def _choose(candidates: Sequence[np.ndarray], whole: np.ndarray) -> int:
    """The first (usual) candidate if it holds enough of every class, else the closest match."""
    matches = [_match(held, whole) for held in candidates]
    if matches[0] >= ENOUGH_MATCH:
        return 0
    return max(range(len(matches)), key=lambda index: (matches[index], -index))


def _match(held: np.ndarray, whole: np.ndarray) -> float:
    """How closely the held-out class shares follow the whole's: the worst class's ratio, at most 1.

    A class the whole holds and the held-out part lacks scores 0; one with half (or twice) its
    share scores 0.5.
    """
    present = whole > 0
    if held.sum() == 0 or not present.any():
        return 0.0
    ratio = (held[present] / held.sum()) / (whole[present] / whole.sum())
    return float(np.min(np.minimum(ratio, 1 / np.maximum(ratio, 1e-12))))


def _missing(held: np.ndarray, whole: np.ndarray) -> tuple[int, ...]:
    return tuple(int(class_id) for class_id in np.flatnonzero((whole > 0) & (held == 0)))
