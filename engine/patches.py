"""Lazy patch sampling for training: random windows per epoch and a fixed validation grid.

Nothing here loads a raster whole: a patch is read when a batch asks for it, so a training set may
be many rasters each larger than memory. Random patches depend only on (seed, epoch, index), so a
resumed run or a run with worker processes sees exactly the same patches as an uninterrupted one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rasterio.io import DatasetReader
from rasterio.windows import Window
from torch.utils.data import DataLoader, Dataset

from engine.datasets import (
    IGNORE_INDEX,
    MAX_INVALID_FRACTION,
    MAX_VALIDATION_WINDOWS,
    WINDOW_TRIES,
    Region,
    mask_classes,
)
from engine.rasters.normalize import Normalization
from engine.rasters.read import RasterBlock, RasterInfo, open_raster, read_block

# Rasters are kept whole in memory (per process) up to this many bytes of float32: a training run
# reads each pixel many times, and one numpy slice costs far less than a GDAL window read.
MEMORY_CACHE_BYTES = 1 << 29


def default_patches_per_epoch(regions: Sequence[Region], patch: int, batch_size: int) -> int:
    """About two looks at every training pixel per epoch, between 8 and 64 batches."""
    area = sum(region.area for region in regions)
    batches = int(np.clip(np.ceil(2 * area / (patch * patch) / batch_size), 8, 64))
    return batches * batch_size


class PatchReader:
    """Reads normalised patches; each process opens its own rasterio handles, lazily, and keeps them.

    Rasters small enough (``MEMORY_CACHE_BYTES`` in all) are read whole on first use and sliced after.

    A DataLoader worker gets a copy of this object without handles (see ``__getstate__``, and the
    process id check for forked workers), because an open GDAL dataset must never cross processes.
    """

    def __init__(self, bands: Sequence[int], normalization: Normalization, patch: int) -> None:
        self.bands = list(bands)
        self.normalization = normalization
        self.patch = patch
        self._handles: dict[Path, DatasetReader] = {}
        self._stack = ExitStack()
        self._pid = os.getpid()
        self._cache: dict[tuple[Path, tuple[int, ...]], RasterBlock] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.update(_handles={}, _stack=None, _pid=None, _cache={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._stack = ExitStack()
        self._pid = os.getpid()

    def close(self) -> None:
        """Closes the handles this process opened."""
        if self._pid == os.getpid():
            self._stack.close()
        self._handles = {}
        self._cache = {}

    def _block(self, info: RasterInfo, window: Window, bands: Sequence[int]) -> RasterBlock:
        """The window's pixels, from the whole-raster copy in memory when the raster fits there."""
        key = (info.path, tuple(bands))
        if key not in self._cache:
            cached = sum(block.data.nbytes + block.valid.nbytes for block in self._cache.values())
            if cached + info.width * info.height * (4 * len(bands) + 1) > MEMORY_CACHE_BYTES:
                return read_block(self._dataset(info), window, bands, info)
            self._cache[key] = read_block(
                self._dataset(info), Window(0, 0, info.width, info.height), bands, info
            )
        whole = self._cache[key]
        rows = slice(window.row_off, window.row_off + window.height)
        cols = slice(window.col_off, window.col_off + window.width)
        return RasterBlock(data=whole.data[:, rows, cols].copy(), valid=whole.valid[rows, cols].copy())

    def _dataset(self, info: RasterInfo) -> DatasetReader:
        if self._pid != os.getpid():
            self._handles, self._stack, self._pid = {}, ExitStack(), os.getpid()
        if info.path not in self._handles:
            self._handles[info.path] = self._stack.enter_context(open_raster(info.path))
        return self._handles[info.path]

    def read_target(self, region: Region, window: Window) -> np.ndarray:
        """The mask's class ids in ``window`` as uint8, IGNORE_INDEX where unlabelled (0/255 read as 0/1)."""
        mask = region.pair.mask
        assert mask is not None, "read_target needs an image with a mask"
        return mask_classes(self._block(mask.raster, window, [1]), mask)

    def read(self, region: Region, row: int, col: int) -> dict[str, np.ndarray]:
        """The patch whose top-left pixel is (row, col), clipped to the region and padded to size.

        Returns ``image`` (bands, p, p) float32 normalised, ``valid`` (p, p) bool and, with a mask,
        ``target`` (p, p) uint8 class ids with IGNORE_INDEX wherever ``valid`` is False.
        """
        height = min(self.patch, region.row + region.height - row)
        width = min(self.patch, region.col + region.width - col)
        window = Window(col, row, width, height)
        image = self._block(region.pair.image, window, self.bands)
        valid = image.valid
        target = None
        if region.pair.mask is not None:
            target = self.read_target(region, window)
            valid = valid & (target != IGNORE_INDEX)
            target[~valid] = IGNORE_INDEX
        data = self.normalization.apply(image.data, valid)
        pads = ((0, self.patch - height), (0, self.patch - width))
        if pads[0][1] or pads[1][1]:
            mode = "reflect" if height > 1 and width > 1 else "edge"
            data = np.pad(data, ((0, 0), *pads), mode=mode)
            valid = np.pad(valid, pads, constant_values=False)
            if target is not None:
                target = np.pad(target, pads, constant_values=IGNORE_INDEX)
        patch = {"image": data, "valid": valid}
        if target is not None:
            patch["target"] = target
        return patch


def _to_tensors(patch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    tensors = {
        "image": torch.from_numpy(np.ascontiguousarray(patch["image"], dtype=np.float32)),
        "valid": torch.from_numpy(np.ascontiguousarray(patch["valid"])),
    }
    if "target" in patch:
        tensors["target"] = torch.from_numpy(np.ascontiguousarray(patch["target"]).astype(np.int64))
    return tensors


class RandomPatches(Dataset):
    """``count`` random training patches per epoch, drawn from regions in proportion to their area.

    ``focus``, when given, may choose a patch's window instead (e.g. around a rare class); it gets
    the patch's random generator and returns ``(region, row, col)`` or None for a uniform draw.

    Patch ``index`` of epoch ``epoch`` depends only on (seed, epoch, index), so a resumed run and a
    run with worker processes draw exactly the patches an uninterrupted single-process run would.
    """

    def __init__(
        self,
        reader: PatchReader,
        regions: Sequence[Region],
        count: int,
        seed: int,
        augment: bool,
        focus: Callable[[np.random.Generator], tuple[Region, int, int] | None] | None = None,
    ) -> None:
        self.reader = reader
        self.regions = list(regions)
        self.count = count
        self.seed = seed
        self.augment = augment
        self.focus = focus
        self.epoch = 0
        areas = np.array([region.area for region in self.regions], dtype=np.float64)
        self._weights = areas / areas.sum()

    def _uniform_window(self, rng: np.random.Generator) -> tuple[Region, int, int]:
        region = self.regions[int(rng.choice(len(self.regions), p=self._weights))]
        row = region.row + int(rng.integers(0, max(1, region.height - self.reader.patch + 1)))
        col = region.col + int(rng.integers(0, max(1, region.width - self.reader.patch + 1)))
        return region, row, col

    def set_epoch(self, epoch: int) -> None:
        """Chooses which epoch's patches the next iteration yields (call before making the iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        best: dict[str, np.ndarray] | None = None
        for _ in range(WINDOW_TRIES):
            chosen = self.focus(rng) if self.focus is not None else None
            patch = self.reader.read(*(chosen or self._uniform_window(rng)))
            if best is None or patch["valid"].mean() > best["valid"].mean():
                best = patch
            if 1.0 - patch["valid"].mean() <= MAX_INVALID_FRACTION:
                break
        assert best is not None
        if self.augment:
            best = _augment(best, rng)
        return _to_tensors(best)


def _augment(patch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The same random flip and quarter turn for the image, its validity and its target."""
    turns = int(rng.integers(0, 4))
    flip = bool(rng.integers(0, 2))
    result = {}
    for name, array in patch.items():
        array = np.rot90(array, turns, axes=(-2, -1))
        result[name] = np.flip(array, axis=-1) if flip else array
    return result


class GridPatches(Dataset):
    """A fixed grid of validation windows (the last row and column aligned to the region's edge)."""

    def __init__(self, reader: PatchReader, regions: Sequence[Region]) -> None:
        self.reader = reader
        self.windows = [(region, row, col) for region in regions for row, col in _grid(region, reader.patch)]
        if len(self.windows) > MAX_VALIDATION_WINDOWS:
            keep = np.linspace(0, len(self.windows) - 1, MAX_VALIDATION_WINDOWS).round().astype(int)
            self.windows = [self.windows[i] for i in keep]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return _to_tensors(self.reader.read(*self.windows[index]))


def _grid(region: Region, patch: int) -> list[tuple[int, int]]:
    def starts(origin: int, extent: int) -> list[int]:
        if extent <= patch:
            return [origin]
        return sorted({*range(origin, origin + extent - patch, patch), origin + extent - patch})

    return [
        (row, col) for row in starts(region.row, region.height) for col in starts(region.col, region.width)
    ]


def make_loader(dataset: Dataset, batch_size: int, num_workers: int, pin_memory: bool) -> DataLoader:
    """A DataLoader in the dataset's own order (patches are already random); no worker is reused."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,
    )
