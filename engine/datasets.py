"""Training data: pairing images with masks, checking them, and sampling patches lazily.

A training set is many rasters, possibly each larger than memory, so nothing here loads a raster
whole: patches are random windows read when a batch asks for them (a fixed number per epoch), and
validation is a fixed grid of windows. Every file is checked before the first batch, because a
mask of another size or CRS discovered after an hour of training is an hour lost. Invalid pixels
(image nodata, mask nodata, padding) get the ignore index, so no loss or metric ever counts them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rasterio.crs import CRS
from rasterio.windows import Window

from engine.errors import DatasetError
from engine.profiles.checks import check_training_rasters
from engine.progress import Reporter
from engine.rasters.read import (
    RasterBlock,
    RasterInfo,
    check_bands,
    find_rasters,
    open_raster,
    read_block,
    read_info,
)

IGNORE_INDEX = 255
MAX_INVALID_FRACTION = 0.5
WINDOW_TRIES = 8
MAX_VALIDATION_WINDOWS = 256
MASK_SCAN_ROWS = 512
MASK_SUFFIX = "_mask"
MASK_VALUES = ("auto", "binary", "classes")


@dataclass(frozen=True)
class _ScannedMask:
    """A mask that lines up with its image, and its distinct valid values with their pixel counts."""

    raster: RasterInfo
    values: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class MaskInfo:
    """A checked mask: its raster, whether 0/255 is read as 0/1, and labelled pixels per class id.

    ``binary`` is decided once for the whole training set (see `find_training_data`), never per
    file, so one mask cannot mean "255 is class 1" while its neighbour means "255 is unlabelled".
    """

    raster: RasterInfo
    binary: bool
    class_pixels: dict[int, int]


def mask_classes(block: RasterBlock, mask: MaskInfo) -> np.ndarray:
    """A mask block's class ids as uint8, IGNORE_INDEX where unlabelled (0/255 read as 0/1 if binary)."""
    target = block.data[0].astype(np.uint8)
    if mask.binary:
        target[target == IGNORE_INDEX] = 1
    target[~block.valid] = IGNORE_INDEX
    return target


@dataclass(frozen=True)
class ImagePair:
    """One training image and its mask (None for anomaly training on normal images)."""

    image: RasterInfo
    mask: MaskInfo | None


@dataclass(frozen=True)
class Region:
    """A rectangle of one image (pixel rows and columns) that patches are drawn from."""

    pair: ImagePair
    row: int
    col: int
    height: int
    width: int

    @property
    def area(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class DataSplit:
    """Where training patches and validation windows come from; the two never share a pixel."""

    train: list[Region]
    validation: list[Region]
    description: str


def find_training_data(
    images: Sequence[Path],
    masks: Sequence[Path] | None,
    reporter: Reporter,
    mask_values: str = "auto",
    nodata: float | None = None,
) -> list[ImagePair]:
    """Finds, opens and checks the training rasters; pairs each image with its mask by file stem.

    ``a.tif`` pairs with ``a.tif`` or ``a_mask.tif`` among the masks; images and masks may share a
    folder. Images must all have the same band count. ``mask_values`` says how 255 is read, for the
    whole set at once: ``binary`` (0/255 masks, 255 is class 1), ``classes`` (255 is unlabelled) or
    ``auto`` (binary when every mask holds only 0 and 255 and the set holds both).

    ``nodata`` applies to images that declare no nodata value (``--nodata``), not to masks.

    Raises:
        RasterError: a path is missing, a folder holds no raster, a file is not a readable GeoTIFF.
        DatasetError: an image has no mask, a mask does not line up with its image, band counts
            differ, a mask holds values that are no class id, or ``binary`` meets other values.
    """
    if mask_values not in MASK_VALUES:
        raise DatasetError(f"--mask-values must be one of {', '.join(MASK_VALUES)}, not {mask_values!r}.")
    image_paths = find_rasters(images)
    if masks is None:
        pairs = [ImagePair(read_info(path, nodata), None) for path in image_paths]
    else:
        matched = [
            (read_info(image, nodata), _check_mask(read_info(image, nodata), read_info(mask)))
            for image, mask in _match_masks(image_paths, find_rasters(masks))
        ]
        binary = _binary_set([scanned for _, scanned in matched], mask_values)
        pairs = [ImagePair(image, _classify(scanned, binary, reporter)) for image, scanned in matched]
    _check_band_counts([pair.image for pair in pairs])
    check_training_rasters([pair.image for pair in pairs])
    return pairs


def describe_mask_values(pairs: Sequence[ImagePair]) -> str | None:
    """How the set's masks were read, for the training summary (None without masks)."""
    masks = [pair.mask for pair in pairs if pair.mask is not None]
    if not masks:
        return None
    if masks[0].binary:
        return f"binary: 0 is class 0 and {IGNORE_INDEX} is class 1 in every mask"
    return f"class ids: {IGNORE_INDEX} or the mask's nodata value is unlabelled in every mask"


def _binary_set(masks: list[_ScannedMask], mask_values: str) -> bool:
    """One reading of 0/255 for the whole set, so no mask is read differently from the others."""
    binary_values = {0.0, float(IGNORE_INDEX)}
    if mask_values == "binary":
        odd = next((m for m in masks if not set(m.values.tolist()) <= binary_values), None)
        if odd is not None:
            other = next(v for v in odd.values.tolist() if v not in binary_values)
            raise DatasetError(
                f"Mask {odd.raster.path} holds the value {other:g}, but binary masks hold only 0 and "
                f"{IGNORE_INDEX}. Use --mask-values classes (or auto) for class-id masks."
            )
        return True
    if mask_values == "classes":
        return False
    seen = {value for m in masks for value in m.values.tolist()}
    return seen == binary_values


def _match_masks(images: list[Path], masks: list[Path]) -> list[tuple[Path, Path]]:
    if len(images) == 1 and len(masks) == 1 and images[0] != masks[0]:
        return [(images[0], masks[0])]
    by_stem: dict[str, list[Path]] = {}
    for mask in masks:
        by_stem.setdefault(mask.stem, []).append(mask)
    matches: dict[Path, Path | None] = {}
    for image in images:
        candidates = [
            mask for stem in (image.stem + MASK_SUFFIX, image.stem) for mask in by_stem.get(stem, [])
        ]
        candidates = [mask for mask in candidates if mask.resolve() != image.resolve()]
        matches[image] = candidates[0] if candidates else None
    used_as_mask = {mask.resolve() for mask in matches.values() if mask is not None}
    pairs = []
    for image, mask in matches.items():
        if image.resolve() in used_as_mask:
            continue
        if mask is None:
            folders = ", ".join(sorted({str(m.parent) for m in masks}))
            raise DatasetError(
                f"{image}: no mask found (looked for {image.stem}.tif or {image.stem}{MASK_SUFFIX}.tif "
                f"in {folders}). Add its mask or move the image out of the training folder."
            )
        pairs.append((image, mask))
    return pairs


def _check_mask(image: RasterInfo, mask: RasterInfo) -> _ScannedMask:
    problems = []
    if (image.width, image.height) != (mask.width, mask.height):
        problems.append(f"size {mask.width}×{mask.height} instead of {image.width}×{image.height}")
    if not _same_crs(image, mask):
        problems.append(f"CRS {mask.crs or 'none'} instead of {image.crs or 'none'}")
    elif not np.allclose(image.transform, mask.transform, rtol=0, atol=1e-6 * max(image.pixel_size)):
        problems.append("a different georeferencing (transform)")
    if mask.count != 1:
        problems.append(f"{mask.count} bands instead of 1")
    if problems:
        colour = (
            " A colour mask (RGB) must first become one band of class ids: give each colour its class "
            "number (0, 1, 2, …), e.g. with gdal_calc.py or QGIS's raster calculator."
            if mask.count != 1
            else ""
        )
        raise DatasetError(
            f"Mask {mask.path} does not match image {image.path}: it has {' and '.join(problems)}. "
            "Export the mask on the image's grid (same size, transform and CRS, one band of class ids)."
            + colour
        )
    values, counts = _scan_mask_values(mask)
    if values.size and (
        values.min() < 0 or values.max() > IGNORE_INDEX or np.any(values != np.round(values))
    ):
        bad = next(v for v in values if v < 0 or v > IGNORE_INDEX or v != round(v))
        raise DatasetError(
            f"Mask {mask.path} holds the value {bad:g}, which is no class id. Masks hold whole class "
            f"ids 0–254 ({IGNORE_INDEX} or the mask's nodata value means unlabelled)."
        )
    return _ScannedMask(mask, values, counts)


def _classify(scanned: _ScannedMask, binary: bool, reporter: Reporter) -> MaskInfo:
    """Pixels per class id under the set's reading of 255; refuses a mask with no labelled pixel."""
    mask = scanned.raster
    class_pixels = {
        (1 if binary and value == IGNORE_INDEX else int(value)): int(count)
        for value, count in zip(scanned.values, scanned.counts, strict=True)
        if binary or value != IGNORE_INDEX
    }
    if not class_pixels:
        hint = (
            ""
            if binary
            else f" If {IGNORE_INDEX} marks the foreground of binary masks, pass --mask-values binary."
        )
        raise DatasetError(
            f"Mask {mask.path} has no labelled pixel (all nodata or {IGNORE_INDEX}). Label some pixels "
            f"or leave this image out.{hint}"
        )
    if len(class_pixels) == 1:
        only = next(iter(class_pixels))
        reporter.on_message(
            "warning",
            f"Mask {mask.path} holds a single class ({only}); its image only teaches that class. "
            "Check the mask if the image shows other classes.",
        )
    return MaskInfo(mask, binary, class_pixels)


def _same_crs(a: RasterInfo, b: RasterInfo) -> bool:
    if a.crs_wkt is None or b.crs_wkt is None:
        return a.crs_wkt == b.crs_wkt
    return a.crs == b.crs or CRS.from_wkt(a.crs_wkt) == CRS.from_wkt(b.crs_wkt)


def _scan_mask_values(mask: RasterInfo) -> tuple[np.ndarray, np.ndarray]:
    """Distinct valid values of a mask and their pixel counts, read in strips (bounded memory)."""
    totals: Counter[float] = Counter()
    with open_raster(mask.path) as dataset:
        for row in range(0, mask.height, MASK_SCAN_ROWS):
            window = Window(0, row, mask.width, min(MASK_SCAN_ROWS, mask.height - row))
            block = read_block(dataset, window, [1], mask)
            values, counts = np.unique(block.data[0][block.valid], return_counts=True)
            totals.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))
    values = np.array(sorted(totals), dtype=np.float64)
    return values, np.array([totals[v] for v in values.tolist()], dtype=np.int64)


def _check_band_counts(images: list[RasterInfo]) -> None:
    usual, _ = Counter(info.count for info in images).most_common(1)[0]
    odd = next((info for info in images if info.count != usual), None)
    if odd is not None:
        reference = next(info for info in images if info.count == usual)
        raise DatasetError(
            f"{odd.path} has {odd.count} band(s) but {reference.path} has {usual}. All training images "
            "need the same bands in the same order: remove or convert the odd one."
        )


def select_bands(pairs: Sequence[ImagePair], bands: Sequence[int] | None) -> list[int]:
    """The 1-based bands to train on, checked against every image (every data band by default).

    Raises:
        BandMismatchError: a requested band does not exist in some image.
    """
    chosen = check_bands(pairs[0].image, bands)
    for pair in pairs[1:]:
        check_bands(pair.image, chosen)
    return chosen


def class_count(pairs: Sequence[ImagePair]) -> int:
    """Number of network outputs: the highest class id in any mask plus one, at least two."""
    highest = max(max(pair.mask.class_pixels) for pair in pairs if pair.mask is not None)
    return max(2, highest + 1)


def describe_files(pairs: Sequence[ImagePair]) -> list[dict[str, Any]]:
    """The training files with their sizes, for the model's training summary."""
    described = []
    for pair in pairs:
        entry: dict[str, Any] = {
            "image": str(pair.image.path),
            "size_bytes": pair.image.size_bytes,
            "width": pair.image.width,
            "height": pair.image.height,
        }
        if pair.mask is not None:
            entry["mask"] = str(pair.mask.raster.path)
            entry["mask_size_bytes"] = pair.mask.raster.size_bytes
        described.append(entry)
    return described
