"""Everything checked before a prediction starts, for every input, so that a batch of rasters does
not fail on the fifth one for a reason visible at the start: can the model read the raster, is
there anything to predict, and can the outputs be written."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from engine.errors import BandMismatchError, OutputError, RasterError
from engine.inference.heads import output_names, staging_bytes_per_pixel
from engine.inference.outputs import check_writable_folder, overview_factors
from engine.models.metadata import ModelMetadata
from engine.profiles.checks import check_band_order, check_pixel_size
from engine.rasters.normalize import sample_windows
from engine.rasters.read import RasterInfo, open_raster, read_block, read_info

# The longest file name (in UTF-8 bytes) that common file systems (ext4, NTFS, APFS) allow.
MAX_NAME_BYTES = 255


def check_compatibility(
    metadata: ModelMetadata,
    raster_path: Path,
    model_name: str = "the model",
    bands: list[int] | None = None,
    resample: bool = False,
    nodata: float | None = None,
) -> list[str]:
    """Checks that a model can be applied to a raster; returns warnings the user should read.

    ``bands`` are the raster's bands to read in place of the model's own (``--bands``); ``resample``
    accepts any pixel size (the raster is read at the model's); ``nodata`` is the nodata value of a
    raster that declares none.

    Raises:
        RasterError: the raster cannot be read, every pixel of it is nodata, or its pixels are more
            than 4x the model's (or smaller) without ``resample``.
        BandMismatchError: the raster lacks a band the model needs, has another number of bands than
            the training rasters, has another data type, or has the model's named bands in another order.
    """
    info = read_info(raster_path, nodata)
    bands = check_band_choice(metadata, bands)
    count = metadata.band_count if bands == metadata.bands else None
    if max(bands) > info.count or count not in (None, info.count) or info.dtype != metadata.input_dtype:
        trained_on = f" from {count}-band rasters" if count else ""
        raise BandMismatchError(
            f"{info.path}: {model_name} expects {len(bands)} band(s) ({','.join(map(str, bands))}) of "
            f"{metadata.input_dtype}{trained_on}; the raster has {info.count} band(s) of {info.dtype}. Use a "
            "raster from the same sensor and processing as the training data, or train a model on rasters "
            "like this one."
        )
    check_band_order(metadata, info, bands, model_name)
    warnings = []
    if info.crs is None:
        warnings.append(f"{info.path} has no CRS: its outputs will not be georeferenced either.")
    warnings.extend(check_pixel_size(metadata, info, model_name, resample))
    if not _has_valid_pixel(info, bands):
        raise RasterError(
            f"{info.path}: every pixel is nodata (or NaN) in bands {','.join(map(str, bands))}, so there is "
            "nothing to predict. Check the nodata value, or choose a raster that contains data."
        )
    return warnings


def check_band_choice(metadata: ModelMetadata, bands: list[int] | None) -> list[int]:
    """The raster bands to read: ``bands`` (``--bands``) if given, one per model band, else the model's.

    Raises:
        BandMismatchError: ``bands`` has another length than the model's band list.
    """
    if bands is None:
        return metadata.bands
    if len(bands) != len(metadata.bands) or min(bands) < 1:
        raise BandMismatchError(
            f"--bands {','.join(map(str, bands))}: the model reads {len(metadata.bands)} band(s) "
            f"({','.join(map(str, metadata.bands))}); give that many band numbers, from 1."
        )
    return list(bands)


def _has_valid_pixel(info: RasterInfo, bands: list[int]) -> bool:
    """Looks at the centre and a few random windows first; reads everything only if they are empty."""
    rng = np.random.default_rng(0)
    centre = Window(
        max(0, info.width // 2 - 128),
        max(0, info.height // 2 - 128),
        min(256, info.width),
        min(256, info.height),
    )
    with open_raster(info.path) as dataset:
        for window in [centre, *sample_windows(info, 8, rng)]:
            if read_block(dataset, window, bands, info).valid.any():
                return True
        for row in range(0, info.height, 256):
            window = Window(0, row, info.width, min(256, info.height - row))
            if read_block(dataset, window, bands, info).valid.any():
                return True
    return False


def check_outputs(
    metadata: ModelMetadata, raster_paths: list[Path], output_dir: Path, probabilities: bool, overwrite: bool
) -> dict[Path, dict[str, str]]:
    """Creates the output folder, proves it writable and refuses to overwrite outputs unless ``overwrite``.

    Returns each raster's output file names by key (see `output_names`).

    Raises:
        OutputError: the folder is not writable, two rasters would write the same outputs, an output
            name is too long for the file system, or outputs exist and ``overwrite`` is not set.
    """
    check_writable_folder(output_dir)
    stems: dict[str, Path] = {}
    for path in raster_paths:
        if path.stem in stems and stems[path.stem] != path:
            raise OutputError(
                f"{stems[path.stem]} and {path} would write outputs of the same name ({path.stem}_*) in "
                f"{output_dir}. Predict them into different folders."
            )
        stems[path.stem] = path
    names = {path: output_names(metadata, path.stem, probabilities) for path in raster_paths}
    for path, files in names.items():
        longest = max(files.values(), key=lambda name: len(name.encode()))
        if len(longest.encode()) > MAX_NAME_BYTES:
            raise OutputError(
                f"{path}: its output {longest} would have a name of {len(longest.encode())} bytes, more than "
                f"the {MAX_NAME_BYTES} that file systems allow. Give the raster a shorter name."
            )
    existing = [
        output_dir / name
        for files in names.values()
        for name in files.values()
        if (output_dir / name).exists()
    ]
    if existing and not overwrite:
        shown = ", ".join(str(path) for path in existing[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise OutputError(
            f"Output(s) already exist: {shown}{more}. "
            "Use --overwrite to replace them, or choose another folder."
        )
    return names


def check_free_space(
    metadata: ModelMetadata, raster_paths: list[Path], output_dir: Path, probabilities: bool
) -> list[str]:
    """Refuses a prediction whose working files cannot fit on the output folder's disk; warns when
    the outputs fit only if they compress.

    Each raster's outputs are first written uncompressed (with overviews), then copied into
    compressed COGs. The largest raster's uncompressed files must fit, or the job fails for sure;
    with every COG as large as its uncompressed data (the worst case), all of it must fit too.

    Raises:
        OutputError: the uncompressed working files of one raster are larger than the free space.
    """
    per_pixel = staging_bytes_per_pixel(metadata, probabilities)
    infos = [read_info(path) for path in raster_paths]
    sizes = {info.path: _pixels_with_overviews(info.width, info.height) * per_pixel for info in infos}
    largest = max(sizes, key=sizes.__getitem__)
    free = shutil.disk_usage(output_dir).free
    if sizes[largest] > free:
        raise OutputError(
            f"Not enough free space in {output_dir}: the outputs of {largest.name} need about "
            f"{_size_text(sizes[largest])} while they are written (uncompressed, before the COG copy), "
            f"and {_size_text(free)} is free. Free some space, or choose an output folder on another disk."
        )
    worst = sizes[largest] + sum(sizes.values())
    if worst > free:
        return [
            f"{output_dir} has {_size_text(free)} free; the outputs need up to {_size_text(worst)} if "
            "they compress poorly. The job may run out of space: free some to be safe."
        ]
    return []


def _pixels_with_overviews(width: int, height: int) -> int:
    """The pixels of a raster and of the overviews that `engine.inference.outputs` builds for it."""
    return width * height + sum(-(-width // f) * -(-height // f) for f in overview_factors(width, height))


def _size_text(size: float) -> str:
    return f"{size / 1e9:,.1f} GB" if size >= 1e9 else f"{size / 1e6:,.1f} MB"
