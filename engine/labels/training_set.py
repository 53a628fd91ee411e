"""Painted labels frozen into a training job: a crop of the raster, three folds of labels, a small U-Net.

Scribbles are sparse and can lie anywhere, so the usual hold-out (a strip at the bottom of one image)
would often hold no label at all. Instead the labelled part of the raster is cut out once (plus a
margin) and its labels are dealt into three folds: each class's labelled 16-pixel blocks go round-robin
to the folds, so every fold holds every class that was painted in at least three blocks. The three
folds are three image/mask pairs over the same pixels (the image is hard-linked, not copied), and the
trainer holds one pair out, whichever it is: validation then scores the model on labels it never
trained on. The files are written once per job into the job's own folder, so painting can go on
while the job trains on what was there when it started.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from engine.errors import DatasetError
from engine.labels.store import LabelClass, mask_profile, write_atomically
from engine.labels.tiles import UNLABELLED, LabelTiles
from engine.rasters.read import RasterInfo, open_raster
from engine.training.config import TrainConfig

FOLDS = 3
FOLD_BLOCK = 16
LABEL_PATCH = 64
LABEL_DEPTH = 3
LABEL_BASE_WIDTH = 16
LABEL_BATCH = 8
LABEL_PATCHES_PER_EPOCH = 128
LABEL_LEARNING_RATE = 2e-3
DEFAULT_LABEL_EPOCHS = 10
NOTHING_LABELLED = "Nothing is labelled yet: paint a few strokes of at least two classes, then train."


@dataclass(frozen=True)
class FrozenLabels:
    """The files of one label-training job: three images (links to one crop) and their fold masks."""

    images: list[Path]
    masks: list[Path]
    window: Window


def check_trainable(class_pixels: dict[int, int], classes: Sequence[LabelClass]) -> None:
    """Refuses labels a segmentation model cannot learn from, saying what to paint.

    Raises:
        DatasetError: no class, or a single class, is painted.
    """
    painted = sorted(class_id for class_id, count in class_pixels.items() if count > 0)
    if not painted:
        raise DatasetError(NOTHING_LABELLED)
    if len(painted) == 1:
        only = painted[0]
        name = classes[only].name if only < len(classes) else f"class {only}"
        others = [label.name for class_id, label in enumerate(classes) if class_id != only]
        hint = f" (for example {others[0]!r})" if others else " (add one in the class list)"
        raise DatasetError(
            f"Only {name!r} is labelled ({class_pixels[only]} pixels): a model needs at least two classes to "
            f"tell apart. Paint some pixels of another class{hint}, then train."
        )


def freeze_labels(folder: Path, info: RasterInfo, tiles: LabelTiles, seed: int = 0) -> FrozenLabels:
    """Writes the labelled part of the raster and three fold masks into ``folder`` (see the module).

    Raises:
        DatasetError: too few labelled blocks to deal into three folds.
        RasterError: the raster cannot be read.
        OutputError: the folder cannot be written.
    """
    bounds = tiles.labelled_bounds()
    if bounds is None:
        raise DatasetError(NOTHING_LABELLED)
    window = _crop_window(bounds, info, LABEL_PATCH)
    labels = tiles.read(int(window.row_off), int(window.col_off), int(window.height), int(window.width))
    folds = _fold_of_pixels(labels, seed)
    if any(not np.any(folds == fold) for fold in range(FOLDS)):
        raise DatasetError(
            f"The labels are too small to hold some back for checking the model: paint strokes longer than "
            f"{FOLDS * FOLD_BLOCK} pixels (or a few more strokes), then train."
        )
    folder.mkdir(parents=True, exist_ok=True)
    crop = folder / "image.tif"
    _write_crop(crop, info, window)
    images, masks = [], []
    profile = mask_profile(info)
    profile.update(
        width=int(window.width),
        height=int(window.height),
        transform=window_transform(window, rasterio.Affine(*info.transform)),
    )
    for fold in range(FOLDS):
        image = folder / f"fold{fold}.tif"
        _link_or_copy(crop, image)
        mask = folder / f"fold{fold}_mask.tif"
        values = np.where(folds == fold, labels, UNLABELLED).astype(np.uint8)
        write_atomically(mask, lambda temporary, values=values: _write_mask(temporary, profile, values))
        images.append(image)
        masks.append(mask)
    crop.unlink()
    return FrozenLabels(images, masks, window)


def label_training_config(
    frozen: FrozenLabels,
    output: Path,
    classes: Sequence[LabelClass],
    epochs: int = DEFAULT_LABEL_EPOCHS,
    init_model: Path | None = None,
    time_budget_s: float | None = None,
) -> TrainConfig:
    """A segmentation run sized to finish in minutes on a CPU: a small U-Net on 64-pixel patches,
    for ``epochs`` or, given a ``time_budget_s``, for as many epochs as fit in it."""
    return TrainConfig(
        task="segmentation",
        images=list(frozen.images),
        masks=list(frozen.masks),
        output=output,
        patch=LABEL_PATCH,
        batch_size=LABEL_BATCH,
        epochs=epochs,
        time_budget_s=time_budget_s,
        lr=LABEL_LEARNING_RATE,
        val_fraction=1 / FOLDS,
        base_width=LABEL_BASE_WIDTH,
        depth=LABEL_DEPTH,
        patches_per_epoch=LABEL_PATCHES_PER_EPOCH,
        class_names=[label.name for label in classes],
        class_colors=[label.color for label in classes],
        init_model=init_model,
    )


def _crop_window(bounds: tuple[int, int, int, int], info: RasterInfo, margin: int) -> Window:
    """The labelled bounds grown by ``margin`` on each side, clipped to the grid."""
    row, col, height, width = bounds
    top, left = max(0, row - margin), max(0, col - margin)
    bottom, right = min(info.height, row + height + margin), min(info.width, col + width + margin)
    return Window(left, top, right - left, bottom - top)


def _fold_of_pixels(labels: np.ndarray, seed: int) -> np.ndarray:
    """Fold number per labelled pixel (-1 where unlabelled): each class's blocks dealt round-robin."""
    rng = np.random.default_rng(seed)
    folds = np.full(labels.shape, -1, dtype=np.int8)
    block_rows = np.arange(labels.shape[0])[:, None] // FOLD_BLOCK
    block_cols = np.arange(labels.shape[1])[None, :] // FOLD_BLOCK
    block_id = block_rows * (labels.shape[1] // FOLD_BLOCK + 1) + block_cols
    for class_id in np.unique(labels[labels != UNLABELLED]):
        where = labels == class_id
        blocks = np.unique(block_id[where])
        fold_of_block = np.zeros(int(block_id.max()) + 1, dtype=np.int8)
        fold_of_block[rng.permutation(blocks)] = np.arange(len(blocks)) % FOLDS
        folds[where] = fold_of_block[block_id[where]]
    return folds


def _write_crop(path: Path, info: RasterInfo, window: Window) -> None:
    with open_raster(info.path) as source:
        profile = source.profile.copy()
        data = source.read(window=window)
    profile.update(
        driver="GTiff",
        width=int(window.width),
        height=int(window.height),
        transform=window_transform(window, rasterio.Affine(*info.transform)),
        tiled=False,
        compress="deflate",
    )
    for key in ("blockxsize", "blockysize"):
        profile.pop(key, None)

    def write(temporary: Path) -> None:
        with rasterio.open(temporary, "w", **profile) as target:
            target.write(data)

    write_atomically(path, write)


def _write_mask(path: Path, profile: dict[str, object], values: np.ndarray) -> None:
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(values[None])


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link where the file system allows it (no extra disk), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
