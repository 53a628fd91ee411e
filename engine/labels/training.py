"""Training from polygons: one cached class mask per image, then the usual image/mask training.

`label_masks` turns a label file into masks on each image's grid (rasterising only what the cache
does not hold yet) and checks what a model could learn from them: images no polygon reaches are
reported and left out (never used as all-background), and labels that hold a single class are
refused, because a model trained on one class learns nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import shapely
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from engine.datasets import IGNORE_INDEX
from engine.errors import DatasetError
from engine.labels.cache import (
    cached_mask_path,
    label_cache_dir,
    label_file_digest,
    read_counts,
    write_counts,
)
from engine.labels.classes import class_scheme
from engine.labels.rasterize import footprint, polygons_on_grid, rasterize_mask
from engine.labels.vector_file import LabelFeatures, read_label_features
from engine.paths import app_home
from engine.progress import Reporter
from engine.rasters.read import RasterInfo, find_rasters, read_info

if TYPE_CHECKING:  # engine.training imports this module
    from engine.training.config import TrainConfig


@dataclass(frozen=True)
class LabelSettings:
    """What decides the masks burnt from a label file."""

    path: Path
    layer: str | None = None
    field: str | None = None
    unlabelled: str = "background"
    all_touched: bool = False

    def key(self) -> dict[str, Any]:
        """The settings that enter the cache key (the file itself enters by its content)."""
        return {name: value for name, value in asdict(self).items() if name != "path"}


@dataclass(frozen=True)
class LabelledImage:
    """An image, its cached mask and the mask's pixels per class id (unlabelled pixels left out)."""

    image: Path
    mask: Path
    class_pixels: dict[int, int]


@dataclass(frozen=True)
class LabelMasks:
    """The masks of every image that polygons reach, the class names by id, and the images left out."""

    images: list[LabelledImage]
    class_names: list[str]
    untouched: list[Path]


def label_settings(config: TrainConfig) -> LabelSettings:
    """The label settings of a training configuration that has ``labels``."""
    assert config.labels is not None, "label_settings needs config.labels"
    return LabelSettings(
        config.labels, config.label_layer, config.label_field, config.unlabelled, config.all_touched
    )


def with_label_masks(config: TrainConfig, reporter: Reporter) -> TrainConfig:
    """A segmentation config with ``labels`` made into one with masks (and the labels' class names).

    The images are narrowed to those the polygons reach. Other configs are returned unchanged.
    """
    if config.task != "segmentation" or config.labels is None:
        return config
    cache = config.label_cache or label_cache_dir(app_home())
    masks = label_masks(label_settings(config), config.images, cache, reporter)
    return replace(
        config,
        images=[item.image for item in masks.images],
        masks=[item.mask for item in masks.images],
        class_names=config.class_names or masks.class_names,
    )


def label_masks(
    settings: LabelSettings, images: Sequence[Path], cache_dir: Path, reporter: Reporter
) -> LabelMasks:
    """Rasterises (or finds in the cache) the mask of every image the polygons reach.

    Raises:
        LabelFileError: the label file cannot be read or used (see `read_label_features`).
        DatasetError: the polygons reach none of the images, two images share a file name, or the
            labelled pixels hold a single class.
    """
    features = read_label_features(settings.path, settings.layer, settings.field)
    _report_repairs(features, reporter)
    scheme = class_scheme(features, settings.field, settings.unlabelled)
    digest = label_file_digest(settings.path)
    fill = 0 if settings.unlabelled == "background" else IGNORE_INDEX
    labelled, untouched = [], []
    infos = [read_info(path) for path in find_rasters(images)]
    _check_unique_stems(infos)
    for info in infos:
        polygons = polygons_on_grid(features, scheme.feature_ids, info)
        if polygons is None:
            untouched.append(info.path)
            continue
        mask = cached_mask_path(cache_dir, digest, settings.key(), info)
        counts = read_counts(mask)
        if counts is None:
            reporter.on_message("info", f"Rasterising {features.path.name} onto {info.path.name}...")
            mask.parent.mkdir(parents=True, exist_ok=True)
            counts = rasterize_mask(polygons, info, mask, fill, settings.all_touched)
            write_counts(mask, counts)
        counts.pop(IGNORE_INDEX, None)
        labelled.append(LabelledImage(info.path, mask, counts))
    if not labelled:
        raise DatasetError(no_overlap_message(features, infos))
    if untouched:
        reporter.on_message(
            "warning",
            f"No polygon of {features.path.name} reaches {len(untouched)} image(s), left out of training: "
            + ", ".join(path.name for path in untouched),
        )
    _check_classes(features, labelled, scheme.names, settings.unlabelled)
    return LabelMasks(labelled, scheme.names, untouched)


def _report_repairs(features: LabelFeatures, reporter: Reporter) -> None:
    if features.repaired:
        reporter.on_message(
            "warning",
            f"{features.repaired} invalid polygon(s) of {features.path.name} were repaired "
            "(GEOS make_valid); check them in QGIS (Vector > Geometry Tools > Check Validity) "
            "if the labels look wrong.",
        )
    if features.dropped:
        reporter.on_message(
            "warning",
            f"{features.dropped} feature(s) of {features.path.name} without a geometry or class value "
            "are left out.",
        )


def _check_unique_stems(infos: list[RasterInfo]) -> None:
    stems = Counter(info.path.stem for info in infos)
    twice = [stem for stem, count in stems.items() if count > 1]
    if twice:
        raise DatasetError(
            f"Several images are named {twice[0]}.*; masks are kept by image name, so rename one of them."
        )


def _check_classes(
    features: LabelFeatures, labelled: list[LabelledImage], names: list[str], unlabelled: str
) -> None:
    totals: Counter[int] = Counter()
    for item in labelled:
        totals.update(item.class_pixels)
    present = [class_id for class_id, count in totals.items() if count]
    if len(present) >= 2:
        return
    if not present or (unlabelled == "background" and present == [0]):
        raise DatasetError(
            f"The polygons of {features.path} cover no pixel centre of the images: they are smaller than a "
            "pixel. Use --all-touched, or label at the images' resolution."
        )
    only = names[present[0]] if present[0] < len(names) else f"class {present[0]}"
    advice = (
        "Add polygons of another class, or pass --unlabelled background if everything outside the polygons "
        "is background."
        if unlabelled == "ignore"
        else "Add polygons of other classes, or check that they lie on the images."
    )
    raise DatasetError(
        f"The labelled pixels of {features.path} hold a single class ({only}); a model trained on one class "
        f"learns nothing. {advice}"
    )


def no_overlap_message(features: LabelFeatures, infos: list[RasterInfo]) -> str:
    """Where the polygons lie and where the first image lies, both in the label file's CRS."""
    left, bottom, right, top = shapely.total_bounds(features.geometries).tolist()
    where = (
        f"its polygons lie within x {left:.6g}..{right:.6g}, y {bottom:.6g}..{top:.6g} "
        f"of {_crs_name(features.crs_wkt)}"
    )
    first = infos[0]
    image_footprint = footprint(first, Window(0, 0, first.width, first.height))
    image_bounds = transform_bounds(
        CRS.from_wkt(str(first.crs_wkt)), CRS.from_wkt(features.crs_wkt), *image_footprint.bounds
    )
    where += (
        f"; {first.path.name} covers x {image_bounds[0]:.6g}..{image_bounds[2]:.6g}, "
        f"y {image_bounds[1]:.6g}..{image_bounds[3]:.6g}"
    )
    return (
        f"{features.path} overlaps none of the {len(infos)} image(s) ({where}). Check that the labels belong "
        "to these images and that the file's CRS is right."
    )


def _crs_name(wkt: str) -> str:
    crs = CRS.from_wkt(wkt)
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else (crs.to_string() or "its CRS")
