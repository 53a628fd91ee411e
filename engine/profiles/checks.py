"""Checks of a raster against a model's profile, and of training rasters against each other.

Band names present on both sides in another order mean a BGRN raster fed to an RGBN model: refused,
with the ``--bands`` that reads them in the model's order. Pixel sizes are compared on the ground:
beyond 1.5x the user is warned (objects look another size to the network), beyond 4x the
prediction is refused unless it resamples the raster to the model's pixel size.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from engine.errors import BandMismatchError, DatasetError, RasterError
from engine.models.metadata import ModelMetadata
from engine.profiles.ground import ground_pixel_size
from engine.profiles.profile import band_names, raster_ground_pixel_size
from engine.rasters.read import RasterInfo

PIXEL_SIZE_WARN_RATIO = 1.5
PIXEL_SIZE_REFUSE_RATIO = 4.0
TRAINING_PIXEL_SIZE_RATIO = 1.5


def _key(name: str) -> str:
    return " ".join(name.split()).casefold()


def check_band_order(
    metadata: ModelMetadata, info: RasterInfo, bands: Sequence[int], model_name: str
) -> None:
    """Refuses a raster whose bands carry the model's band names at other positions than ``bands``.

    Raises:
        BandMismatchError: naming the order the model wants and the ``--bands`` that gives it.
    """
    wanted = (metadata.raster_profile or {}).get("band_names") or []
    if not wanted or not all(isinstance(name, str) and name for name in wanted):
        return
    present = [_key(name) if name else None for name in band_names(info, range(1, info.count + 1))]
    if any(present.count(_key(name)) != 1 for name in wanted):
        return  # some name is missing or ambiguous here: nothing to compare by name
    positions = [present.index(_key(name)) + 1 for name in wanted]
    if positions != list(bands):
        where, reading = ",".join(map(str, positions)), ",".join(map(str, bands))
        raise BandMismatchError(
            f"{info.path}: {model_name} reads the bands {', '.join(wanted)} in that order, but in this "
            f"raster they are bands {where} (it would read bands {reading}). Predict with --bands {where}."
        )


def model_ground_pixel_size(metadata: ModelMetadata) -> tuple[float, float] | None:
    """The training rasters' pixel size in metres: from the profile, else from the pixel size and CRS."""
    stored = (metadata.raster_profile or {}).get("ground_pixel_size_m")
    if stored:
        return stored[0], stored[1]
    return ground_pixel_size(metadata.pixel_size, metadata.crs) if metadata.pixel_size else None


def pixel_size_ratio(metadata: ModelMetadata, info: RasterInfo) -> float | None:
    """How many times larger or smaller the raster's pixels are than the model's (>= 1), if known."""
    trained, have = model_ground_pixel_size(metadata), raster_ground_pixel_size(info)
    if trained is None or have is None:
        if metadata.pixel_size is None or metadata.crs not in (None, info.crs):
            return None
        trained, have = metadata.pixel_size, info.pixel_size  # same (or unrecorded) CRS: map units
    return max(max(h / t, t / h) for h, t in zip(have, trained, strict=True))


def check_pixel_size(metadata: ModelMetadata, info: RasterInfo, model_name: str, resample: bool) -> list[str]:
    """Warnings about the raster's pixel size against the model's.

    Raises:
        RasterError: the pixels differ more than 4x and ``resample`` is not set.
    """
    ratio = pixel_size_ratio(metadata, info)
    if ratio is None or ratio <= PIXEL_SIZE_WARN_RATIO:
        return []
    have = raster_ground_pixel_size(info)
    trained = model_ground_pixel_size(metadata)
    sizes = (
        f"pixels of {_metres(have)} on the ground, {model_name} was trained on {_metres(trained)}"
        if have and trained
        else f"pixels {ratio:.1f}x the size {model_name} was trained on"
    )
    if resample:
        return [f"{info.path} has {sizes}: it is resampled to the model's pixel size (--resample)."]
    if ratio > PIXEL_SIZE_REFUSE_RATIO:
        raise RasterError(
            f"{info.path} has {sizes} ({ratio:.1f}x apart): objects look too different in size for the "
            "model. Predict with --resample to read it at the model's pixel size, or use imagery of that "
            "resolution."
        )
    return [f"{info.path} has {sizes} ({ratio:.1f}x apart): results may be poor. Consider --resample."]


def _metres(size: tuple[float, float] | None) -> str:
    return f"{size[0]:.3g}x{size[1]:.3g} m" if size else "an unknown size"


def check_training_rasters(images: Sequence[RasterInfo]) -> None:
    """Refuses training images that differ in data type or pixel size, naming the one that differs.

    Their statistics would be pooled into one normalisation, and one network would learn objects at
    several scales at once; the band counts are checked by `engine.datasets`.

    Raises:
        DatasetError: an image's dtype differs from the first image's, or its ground pixel size by more
            than 1.5x.
    """
    first = images[0]
    first_size = raster_ground_pixel_size(first)
    for info in images[1:]:
        if info.dtype != first.dtype:
            raise _differs(info, first, f"is {info.dtype}, but {first.path.name} is {first.dtype}")
        size = raster_ground_pixel_size(info)
        if size is None or first_size is None:
            continue
        ratio = max(max(a / b, b / a) for a, b in zip(size, first_size, strict=True))
        if ratio > TRAINING_PIXEL_SIZE_RATIO:
            problem = f"has pixels of {_metres(size)}, {first.path.name} of {_metres(first_size)}"
            raise _differs(info, first, problem)


def _differs(info: RasterInfo, first: RasterInfo, problem: str) -> DatasetError:
    return DatasetError(
        f"{info.path} {problem}. Training images must share data type and pixel size (their statistics are "
        f"pooled): convert or resample {Path(info.path).name}, or train on it separately."
    )
