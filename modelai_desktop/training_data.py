"""The Train page's check of its training data, through the engine's own pairing and checks.

The page must refuse exactly what training would refuse, so it never re-implements a rule: the
whole set goes through `engine.datasets.find_training_data`, whose verdict decides whether Start
is allowed. When the set is refused, each image is checked on its own the same way, so the table
can flag every image with its problem instead of only the first one the engine met. Qt-free: these
functions run on a read thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.datasets import ImagePair, find_training_data
from engine.errors import EngineError
from engine.labels.training import LabelSettings, label_masks
from engine.patches import default_patches_per_epoch
from engine.progress import RecordingReporter
from engine.rasters.read import RasterInfo, find_rasters, read_info
from engine.training.holdout import split_validation

NO_MASKS = "no mask yet: add the masks (files or a folder)"


@dataclass(frozen=True)
class PairRow:
    """One line of the pairing table: an image, the mask it pairs with, and what is wrong."""

    image: Path
    mask: Path | None
    size: str
    problem: str = ""
    warning: str = ""
    labels: str = ""


@dataclass(frozen=True)
class PairingReport:
    """The rows to show, the engine's pairs when the set can train, and the reason when it cannot."""

    rows: list[PairRow]
    pairs: list[ImagePair] = field(default_factory=list)
    blocking: str = ""

    @property
    def usable(self) -> bool:
        return bool(self.pairs) and not self.blocking


def check_training_data(
    task: str,
    images: Sequence[Path],
    masks: Sequence[Path],
    labels: LabelSettings | None = None,
    label_cache: Path | None = None,
) -> PairingReport:
    """Pairs and checks images (and masks, for segmentation) as training will; reads files, so call
    it on a read thread.

    Args:
        task: ``segmentation`` (images with masks) or ``anomaly`` (images only; masks are ignored).
        labels: a polygon file to rasterise into the masks instead (segmentation), with its
            options; the masks go to ``label_cache`` as training's would.
    """
    try:
        image_files = find_rasters(images)
    except EngineError as exc:
        return PairingReport([], blocking=str(exc))
    if task == "segmentation" and labels is not None and label_cache is not None:
        return _check_label_file(images, image_files, labels, label_cache)
    if task == "segmentation" and not masks:
        rows = [_unpaired_row(path, NO_MASKS) for path in image_files]
        return PairingReport(rows, blocking="Add the masks: segmentation learns from images with masks.")
    wanted_masks = list(masks) if task == "segmentation" else None
    recorder = RecordingReporter()
    try:
        pairs = find_training_data(images, wanted_masks, recorder)
    except EngineError as exc:
        return PairingReport(_rows_one_by_one(image_files, wanted_masks), blocking=_short(str(exc)))
    return PairingReport([_paired_row(pair, recorder.warnings()) for pair in pairs], pairs)


def _check_label_file(
    images: Sequence[Path], image_files: list[Path], labels: LabelSettings, cache: Path
) -> PairingReport:
    """Rasterises the polygons (or finds them in the cache) and pairs each image with its mask."""
    recorder = RecordingReporter()
    try:
        masks = label_masks(labels, images, cache, recorder)
        pairs = find_training_data(
            [item.image for item in masks.images], [item.mask for item in masks.images], recorder
        )
    except EngineError as exc:
        rows = [_unpaired_row(path, _short(str(exc))) for path in image_files]
        return PairingReport(rows, blocking=_short(str(exc)))
    counts = {item.image: item.class_pixels for item in masks.images}
    rows = [
        replace(
            _paired_row(pair, recorder.warnings()),
            labels=class_pixel_text(counts[pair.image.path], masks.class_names),
        )
        for pair in pairs
    ]
    far = "no polygon reaches this image: it is left out"
    return PairingReport(rows + [_unpaired_row(path, far) for path in masks.untouched], pairs)


def class_pixel_text(class_pixels: dict[int, int], names: list[str]) -> str:
    """``building 33,818 px, background 776,182 px``: the labelled pixels of each class, most first."""
    ordered = sorted(class_pixels.items(), key=lambda item: -item[1])
    return ", ".join(
        f"{names[class_id] if class_id < len(names) else f'class {class_id}'} {count:,} px"
        for class_id, count in ordered
    )


def _rows_one_by_one(image_files: list[Path], masks: list[Path] | None) -> list[PairRow]:
    """Each image checked alone against all masks, so every faulty image is named, not just the first."""
    rows: list[PairRow] = []
    used_masks: set[Path] = set()
    for image in image_files:
        recorder = RecordingReporter()
        try:
            (pair,) = find_training_data([image], masks, recorder)
        except EngineError as exc:
            rows.append(_unpaired_row(image, _short(str(exc))))
            continue
        if pair.mask is not None:
            used_masks.add(pair.mask.raster.path.resolve())
        rows.append(_paired_row(pair, recorder.warnings()))
    return [row for row in rows if row.image.resolve() not in used_masks]


def _paired_row(pair: ImagePair, warnings: list[str]) -> PairRow:
    mask = pair.mask.raster.path if pair.mask is not None else None
    mentioned = [text for text in warnings if str(pair.image.path) in text or (mask and str(mask) in text)]
    return PairRow(pair.image.path, mask, _size(pair.image), warning=_short(" ".join(mentioned)))


def _unpaired_row(image: Path, problem: str) -> PairRow:
    try:
        size = _size(read_info(image))
    except EngineError:
        size = "?"
    return PairRow(image, None, size, problem=problem)


def _size(info: RasterInfo) -> str:
    return f"{info.width} × {info.height}, {info.count} band{'s' if info.count != 1 else ''}"


def _short(message: str) -> str:
    """The message with folders left out of file paths: the table names files, the tooltip says more."""
    words = []
    for word in message.split(" "):
        stripped = word.rstrip(".,:;)")
        if stripped.startswith("/") or (len(stripped) > 2 and stripped[1:3] in (":\\", ":/")):
            word = Path(stripped).name + word[len(stripped) :]
        words.append(word)
    return " ".join(words)


@dataclass(frozen=True)
class EpochPlan:
    """How big an epoch will be, for the Estimate line."""

    patches: int
    batches: int
    validation: str


def plan_epoch(
    pairs: Sequence[ImagePair],
    patch: int,
    batch_size: int,
    val_fraction: float,
    val_side: str,
    patches_per_epoch: int | None,
    seed: int,
) -> EpochPlan:
    """The patches and batches per epoch training will draw, and what it holds out for validation.

    Raises:
        DatasetError: the data is too small to hold out ``val_fraction`` and still train.
    """
    split = split_validation(pairs, val_fraction, patch, seed, val_side)
    patches = patches_per_epoch or default_patches_per_epoch(split.train, patch, batch_size)
    return EpochPlan(patches, -(-patches // batch_size), split.description)
