"""What validation holds out, and which classes it holds too little of to rank epochs.

With several images validation is whole images (a seeded draw); with one image it is a strip along
one side (``--val-side``: by default the end strip, the bottom of a tall image or the right of a
wide one), a quarter patch away from the training part. The validation score decides which epoch a
model keeps, so a part that holds almost none of a rare class ranks epochs by a handful of pixels:
in the quality benchmark's Landsat scene the bottom strip holds 0.1 % cloud against 3 % in the
whole scene. Choosing the strip by its classes instead was measured and dropped: there the best
matching strip (the left one, 7.7 % cloud) held half the scene's cloud, and training without it cost
0.18 IoU (docs/training_recipe.md). So the split stays put, and a class that it holds under a
quarter of its share of is named in a warning, with what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.windows import Window

from engine.datasets import IGNORE_INDEX, MASK_SCAN_ROWS, DataSplit, ImagePair, Region, mask_classes
from engine.errors import DatasetError
from engine.rasters.read import open_raster, read_block

VAL_SIDES = ("end", "bottom", "right", "top", "left")
# A class is scarce in the validation part below this share of its share of the whole data.
SCARCE_SHARE = 0.25


def split_validation(
    pairs: Sequence[ImagePair], val_fraction: float, patch: int, seed: int, side: str = "end"
) -> DataSplit:
    """Holds out ``val_fraction`` of the images, or with one image a strip along ``side``.

    A gap of a quarter patch separates a strip from the training part, so neighbouring, nearly
    identical pixels do not end up on both sides. ``side`` (one of VAL_SIDES) only applies to a
    single image.

    Raises:
        DatasetError: a single image is too small to give both a training part and a strip.
    """
    if len(pairs) > 1:
        return _hold_out_images(pairs, val_fraction, seed)
    pair = pairs[0]
    if side == "end":
        side = "bottom" if pair.image.height >= pair.image.width else "right"
    train, validation, where = _strip(pair, val_fraction, patch, side)
    return DataSplit([train], [validation], f"validation: {where} of {pair.image.path.name}")


def scarce_classes(split: DataSplit) -> tuple[int, ...]:
    """Class ids the validation part holds under SCARCE_SHARE of their share of all the labelled data.

    Reads the mask under a validation strip (a strip at a time), so it runs with the training, not
    each time a window asks how the data would split.
    """
    pairs = {region.pair.image.path: region.pair for region in (*split.train, *split.validation)}
    masks = [pair.mask for pair in pairs.values() if pair.mask is not None]
    if len(masks) < len(pairs):
        return ()
    whole = _total_pixels([mask.class_pixels for mask in masks])
    return _scarce(_total_pixels([_region_counts(region) for region in split.validation]), whole)


def _hold_out_images(pairs: Sequence[ImagePair], val_fraction: float, seed: int) -> DataSplit:
    held_out = min(len(pairs) - 1, max(1, round(len(pairs) * val_fraction)))
    order = np.random.default_rng(seed).permutation(len(pairs))
    chosen = set(order[:held_out].tolist())
    regions = [Region(pair, 0, 0, pair.image.height, pair.image.width) for pair in pairs]
    names = ", ".join(pairs[i].image.path.name for i in sorted(chosen))
    return DataSplit(
        [region for i, region in enumerate(regions) if i not in chosen],
        [region for i, region in enumerate(regions) if i in chosen],
        f"validation images: {names}",
    )


def _strip(pair: ImagePair, val_fraction: float, patch: int, side: str) -> tuple[Region, Region, str]:
    """The training part, the validation strip along ``side`` and the strip's description."""
    info = pair.image
    height, width = info.height, info.width
    along_rows = side in ("bottom", "top")
    size = height if along_rows else width
    strip = max(1, round(size * val_fraction))
    gap = patch // 4
    kept = size - strip - gap
    if kept < min(patch, size) // 2 or kept < 8:
        raise DatasetError(
            f"{info.path} ({info.width}×{info.height}) is too small to hold out {val_fraction:.0%} for "
            "validation and still train on the rest. Add a second image or lower the validation fraction."
        )
    if side == "bottom":
        train, validation = Region(pair, 0, 0, kept, width), Region(pair, size - strip, 0, strip, width)
    elif side == "top":
        train, validation = Region(pair, strip + gap, 0, kept, width), Region(pair, 0, 0, strip, width)
    elif side == "right":
        train, validation = Region(pair, 0, 0, height, kept), Region(pair, 0, size - strip, height, strip)
    else:
        train, validation = Region(pair, 0, strip + gap, height, kept), Region(pair, 0, 0, height, strip)
    return train, validation, f"the {side} {strip} {'rows' if along_rows else 'columns'}"


def _region_counts(region: Region) -> dict[int, int]:
    """Labelled pixels per class id in ``region`` (a whole image's are known from its mask check)."""
    mask = region.pair.mask
    assert mask is not None, "class counts need a mask"
    if (region.height, region.width) == (mask.raster.height, mask.raster.width):
        return mask.class_pixels
    totals = np.zeros(IGNORE_INDEX + 1, dtype=np.int64)
    with open_raster(mask.raster.path) as dataset:
        for row in range(region.row, region.row + region.height, MASK_SCAN_ROWS):
            rows = min(MASK_SCAN_ROWS, region.row + region.height - row)
            window = Window(region.col, row, region.width, rows)
            target = mask_classes(read_block(dataset, window, [1], mask.raster), mask)
            totals += np.bincount(target.ravel(), minlength=IGNORE_INDEX + 1)
    return {class_id: int(totals[class_id]) for class_id in np.flatnonzero(totals[:IGNORE_INDEX])}


def _total_pixels(parts: Sequence[dict[int, int]]) -> dict[int, int]:
    totals: dict[int, int] = {}
    for part in parts:
        for class_id, pixels in part.items():
            totals[class_id] = totals.get(class_id, 0) + pixels
    return totals


def _scarce(held: dict[int, int], whole: dict[int, int]) -> tuple[int, ...]:
    """Classes whose share of the held-out pixels is under SCARCE_SHARE of their share of the whole."""
    held_total, whole_total = sum(held.values()), sum(whole.values())
    if not held_total or not whole_total:
        return tuple(sorted(whole))
    expected = {class_id: pixels / whole_total for class_id, pixels in whole.items() if pixels}
    return tuple(
        class_id
        for class_id in sorted(expected)
        if held.get(class_id, 0) / held_total < SCARCE_SHARE * expected[class_id]
    )
