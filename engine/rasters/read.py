"""Opening, validating and reading rasters in windows.

Everything that touches a GeoTIFF goes through here so that every failure (not a raster, a renamed
PNG, a truncated file, a corrupt tile met half-way) becomes a `RasterError` that names the file, and
so that validity (nodata, NaN, alpha band, internal masks) is decided in one place: a pixel that is
not valid is never fed to a network as a number.
"""

from __future__ import annotations

import glob
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import RasterioError, RasterioIOError
from rasterio.io import DatasetReader
from rasterio.windows import Window

from engine.errors import BandMismatchError, RasterError
from engine.sources.gdal_paths import gdal_path, is_virtual, missing_sources

GEOTIFF_DRIVERS = frozenset({"GTiff", "COG"})
GEOTIFF_SUFFIXES = frozenset({".tif", ".tiff"})
# What a folder or glob lists: GeoTIFF, VRT, JPEG2000, ERDAS Imagine and ENVI files. Any other file
# GDAL reads can still be given by name.
RASTER_SUFFIXES = GEOTIFF_SUFFIXES | {".vrt", ".jp2", ".img", ".envi", ".bsq", ".bil", ".bip"}
NODATA_HELP = "nodata value of rasters that declare none (a declared one wins)"
SUPPORTED_DTYPES = frozenset({"uint8", "uint16", "int16", "uint32", "int32", "float32", "float64"})


@dataclass(frozen=True)
class RasterInfo:
    """What the app needs to know about a raster before reading any pixel of it."""

    path: Path
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    crs_wkt: str | None
    is_geographic: bool
    transform: tuple[float, float, float, float, float, float]
    nodata: float | None
    alpha_band: int | None
    band_descriptions: tuple[str | None, ...]
    overview_levels: tuple[int, ...]
    size_bytes: int
    # The colour each band is tagged with (GDAL colour interpretation: "red", "green", "blue"),
    # None for grey or undefined; many rasters name their bands this way rather than by description.
    band_colors: tuple[str | None, ...] = ()

    def band_name(self, band: int) -> str | None:
        """What the file calls a 1-based band: its description, else its colour; None when nothing."""
        index = band - 1
        description = self.band_descriptions[index] if index < len(self.band_descriptions) else None
        color = self.band_colors[index] if index < len(self.band_colors) else None
        return (description or "").strip() or color

    @property
    def pixel_size(self) -> tuple[float, float]:
        """Pixel width and height in map units (absolute, rotation included)."""
        a, b, _, d, e, _ = self.transform
        return (math.hypot(a, d), math.hypot(b, e))

    @property
    def is_north_up(self) -> bool:
        _, b, _, d, _, _ = self.transform
        return b == 0 and d == 0

    @property
    def data_bands(self) -> list[int]:
        """1-based indices of the bands that carry data (an alpha band is a mask, not data)."""
        return [band for band in range(1, self.count + 1) if band != self.alpha_band]

    def describe(self) -> str:
        crs = self.crs or "no CRS"
        return (
            f"{self.path.name}: {self.width}×{self.height}, {self.count} band(s), {self.dtype}, {crs}, "
            f"pixel {self.pixel_size[0]:.6g}×{self.pixel_size[1]:.6g}, nodata {self.nodata}"
        )


@dataclass(frozen=True)
class RasterBlock:
    """Pixels of one window as float32 (bands, rows, cols) and where they are valid (rows, cols)."""

    data: np.ndarray
    valid: np.ndarray


def find_rasters(paths: Sequence[str | Path]) -> list[Path]:
    """Expands files, folders and glob patterns into a sorted list of `.tif`/`.tiff` files.

    Raises:
        RasterError: a path does not exist, or nothing matched at all.
    """
    found: list[Path] = []
    for item in paths:
        path = Path(item)
        if any(char in str(item) for char in "*?["):
            # Path.glob refuses absolute patterns, which users type as often as relative ones.
            matches = (Path(match) for match in glob.glob(str(item), recursive=True))  # noqa: PTH207
            found.extend(sorted(p for p in matches if p.suffix.lower() in RASTER_SUFFIXES))
        elif path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES))
        elif path.exists() or is_virtual(item):
            found.append(path)
        else:
            raise RasterError(f"{path}: no such file or folder. Check the path.")
    if not found:
        names = ", ".join(str(p) for p in paths)
        kinds = "/".join(sorted(RASTER_SUFFIXES))
        raise RasterError(f"No rasters ({kinds}) found in {names}. Give raster files or a folder of them.")
    return list(dict.fromkeys(found))


@contextmanager
def open_raster(path: str | Path) -> Iterator[DatasetReader]:
    """Opens any raster GDAL reads (GeoTIFF, VRT, JPEG2000, ENVI, ``/vsizip/...``) for reading, turning
    every rasterio/GDAL failure into a `RasterError`; a VRT's missing sources are named."""
    path = Path(path)
    if not is_virtual(path):
        _check_file(path)
    try:
        dataset = rasterio.open(gdal_path(path))
    except RasterioIOError as exc:
        raise RasterError(
            f"{path}: not a raster that GDAL can read ({first_line(exc)}). "
            "Check that it is a complete GeoTIFF; export it again if it was cut short."
        ) from exc
    try:
        if dataset.driver not in GEOTIFF_DRIVERS and path.suffix.lower() in GEOTIFF_SUFFIXES:
            raise RasterError(
                f"{path}: this is a {dataset.driver} file, not a GeoTIFF. "
                "Export it as GeoTIFF (e.g. gdal_translate -of GTiff) and try again."
            )
        missing = missing_sources(dataset)
        if missing:
            raise RasterError(
                f"{path}: this VRT refers to {len(missing)} file(s) that do not exist: "
                f"{', '.join(missing[:3])}. Put them back, or build the VRT again from the files you have."
            )
        yield dataset
    finally:
        dataset.close()


def _check_file(path: Path) -> None:
    if not path.exists():
        raise RasterError(f"{path}: file not found. Check the path.")
    if path.is_dir():
        raise RasterError(f"{path} is a folder, not a raster file.")
    if path.stat().st_size == 0:
        raise RasterError(f"{path}: the file is empty (0 bytes). Copy or export it again.")


def read_info(path: str | Path, nodata: float | None = None) -> RasterInfo:
    """Opens, validates and describes a raster; reads one pixel at each end to catch truncation.

    ``nodata`` (``--nodata``) is the nodata value of a raster that declares none; a declared one wins.
    """
    path = Path(path)
    with open_raster(path) as dataset:
        info = _describe(path, dataset, nodata)
        _check_readable(path, dataset)
    return info


def _describe(path: Path, dataset: DatasetReader, nodata: float | None = None) -> RasterInfo:
    dtypes = set(dataset.dtypes)
    if len(dtypes) != 1:
        raise RasterError(
            f"{path}: bands have different data types ({', '.join(sorted(dtypes))}). "
            "Convert all bands to one type."
        )
    dtype = dataset.dtypes[0]
    if dtype not in SUPPORTED_DTYPES:
        raise RasterError(
            f"{path}: data type {dtype} is not supported. Convert to uint8, uint16, int16 or float32."
        )
    crs = dataset.crs
    alpha = next(
        (index + 1 for index, interp in enumerate(dataset.colorinterp) if interp == ColorInterp.alpha),
        None,
    )
    return RasterInfo(
        path=path,
        width=dataset.width,
        height=dataset.height,
        count=dataset.count,
        dtype=dtype,
        crs=_crs_name(crs),
        crs_wkt=crs.to_wkt() if crs else None,
        is_geographic=bool(crs and crs.is_geographic),
        transform=tuple(dataset.transform)[:6],
        nodata=dataset.nodata if dataset.nodata is not None else nodata,
        alpha_band=alpha,
        band_descriptions=tuple(dataset.descriptions),
        overview_levels=tuple(dataset.overviews(1)),
        size_bytes=0 if is_virtual(path) else path.stat().st_size,
        band_colors=tuple(_named_color(interp) for interp in dataset.colorinterp),
    )


def _named_color(interp: ColorInterp) -> str | None:
    """A colour interpretation that names the band ("red", "alpha"...); None for grey and undefined."""
    return None if interp in (ColorInterp.gray, ColorInterp.undefined) else interp.name


def _crs_name(crs: rasterio.crs.CRS | None) -> str | None:
    if not crs:
        return None
    authority = crs.to_authority()
    if authority:
        return f"{authority[0]}:{authority[1]}"
    return crs.to_string() or crs.to_wkt()


def _check_readable(path: Path, dataset: DatasetReader) -> None:
    last = Window(dataset.width - 1, dataset.height - 1, 1, 1)
    for window in (Window(0, 0, 1, 1), last):
        try:
            dataset.read(1, window=window)
        except RasterioError as exc:
            raise RasterError(
                f"{path}: the file opens but its pixels cannot be read ({first_line(exc)}). "
                "It is probably truncated or corrupt: copy or export it again."
            ) from exc


def check_bands(info: RasterInfo, bands: Sequence[int] | None) -> list[int]:
    """Returns the 1-based bands to read: the given ones if they exist, else every data band."""
    if bands is None:
        return info.data_bands
    bad = [band for band in bands if band < 1 or band > info.count]
    if bad:
        raise BandMismatchError(
            f"{info.path}: band(s) {', '.join(map(str, bad))} do not exist; the raster has bands "
            f"1–{info.count}. Choose --bands within that range."
        )
    return list(bands)


def read_block(dataset: DatasetReader, window: Window, bands: Sequence[int], info: RasterInfo) -> RasterBlock:
    """Reads a window of the given bands as float32 with its validity mask.

    A pixel is invalid where any selected band is NaN/inf, where every selected band equals the
    nodata value (a dark pixel with one zero band stays valid), where the alpha band is 0, or
    where GDAL's per-dataset mask says so. An alpha band the caller reads as data (a 4-band RGBN
    file that GDAL wrote as RGBA) is not used as a mask. Invalid pixels are set to 0 so no NaN leaks further.

    Raises:
        RasterError: the window cannot be read (a corrupt tile met after work has started).
    """
    try:
        data = dataset.read(list(bands), window=window, out_dtype="float32")
        valid = pixel_validity(dataset, data, info, bands, window=window)
    except RasterioError as exc:
        raise RasterError(
            f"{info.path}: pixels in rows {window.row_off}–{window.row_off + window.height}, "
            f"columns {window.col_off}–{window.col_off + window.width} cannot be read "
            f"({first_line(exc)}). The file is corrupt there: export it again."
        ) from exc
    data[:, ~valid] = 0.0
    return RasterBlock(data=data, valid=valid)


def pixel_validity(
    dataset: DatasetReader,
    data: np.ndarray,
    info: RasterInfo,
    bands: Sequence[int],
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Where ``data`` (the given bands read from ``window``, or decimated to ``out_shape``) is valid.

    The one rule every reader follows (see `read_block`); masks are resampled with nearest so a
    decimated preview and a full-resolution read agree on what is nodata.
    """
    valid = np.isfinite(data).all(axis=0)
    if info.nodata is not None and not math.isnan(info.nodata):
        valid &= ~(data == np.float32(info.nodata)).all(axis=0)
    shape = {"window": window, "out_shape": out_shape, "resampling": Resampling.nearest}
    if info.alpha_band is not None:
        if info.alpha_band not in bands:
            valid &= dataset.read(info.alpha_band, **shape) > 0
    elif MaskFlags.per_dataset in dataset.mask_flag_enums[0] and info.nodata is None:
        valid &= dataset.read_masks(1, **shape) > 0
    return valid


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, for a one-line error naming its cause.

    rasterio wraps GDAL's errors in a generic "Read failed. See previous exception for details.";
    the GDAL error at the root of the chain says what actually failed, so that one is used.
    """
    if "See previous exception" in str(exc):
        while (cause := exc.__cause__ or exc.__context__) is not None:
            exc = cause
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
