"""Writing prediction outputs: Cloud Optimized GeoTIFFs, a QGIS style and a JSON summary, all or none.

Every output of one raster is written under a temporary name in the output folder and renamed only
when all of them are complete, so a cancel, a crash or a corrupt input tile met half-way leaves
neither a half-written GeoTIFF that looks finished nor a summary without its map. Rasters are
written strip by strip to an uncompressed, striped staging file (any row range goes straight to
disk, so memory does not grow with the raster), which then gets its overviews and is copied into a
tiled, DEFLATE-compressed COG that GIS software and web viewers read as is.
"""

from __future__ import annotations

import errno
import glob
import json
import os
import shutil
import tempfile
import uuid
import xml.etree.ElementTree as ElementTree
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio._err import CPLE_BaseError
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.io import DatasetWriter
from rasterio.windows import Window

from engine.errors import OutputError
from engine.jobs.records import process_alive
from engine.output_metadata.band_statistics import RunningBandStatistics
from engine.rasters.read import RasterInfo, first_line

COG_BLOCK_SIZE = 512
SMALLEST_OVERVIEW = 128
CLASS_NODATA = 255
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
# GDAL reports a failed write without the system's reason ("TIFFAppendToStrip:Write error"); so little
# free space left on the folder's disk after such a failure means that the disk is full.
NEARLY_FULL_BYTES = 64 * 1024 * 1024
# A temporary name keeps this many bytes of its final name, so it stays within the 255 bytes that
# file systems allow a name even when the final name nearly fills them.
TEMPORARY_NAME_BYTES = 120
# Rasterio raises its own errors for most GDAL failures, but lets some through as GDAL's (CPLE_*),
# e.g. reopening a staging file whose last write failed on a full disk.
GDAL_ERRORS = (RasterioError, CPLE_BaseError)


@dataclass(frozen=True)
class RasterSpec:
    """What one output raster holds: its dtype, bands, nodata and how its overviews resample.

    Class masks resample with ``mode`` (an overview pixel is a class that exists, never a blend of
    ids); continuous maps with ``average``. ``colors`` maps values to ``#rrggbb`` for a colour table.
    """

    dtype: str
    count: int
    nodata: float
    resampling: Resampling
    descriptions: tuple[str, ...] = ()
    colors: dict[int, str] | None = None


def overview_factors(width: int, height: int) -> list[int]:
    """Power-of-two decimations down to about ``SMALLEST_OVERVIEW`` pixels on the longer side."""
    factors: list[int] = []
    factor = 2
    while max(width, height) / (factor // 2) > SMALLEST_OVERVIEW:
        factors.append(factor)
        factor *= 2
    return factors


class OutputSet:
    """The outputs of one raster: temporary files that become final together, or not at all.

    Use as a context manager: leaving it by an exception (including `JobCancelled`) removes every
    temporary file, and turns a system error met while writing (a full disk) into an `OutputError`;
    `commit` renames them all to their final names. ``tags`` go into every raster's metadata.
    """

    def __init__(self, folder: Path, tags: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.tags = dict(tags or {})
        self._pending: list[tuple[Path, Path]] = []
        self._temporaries: list[Path] = []
        self._rasters: list[RasterOutput] = []

    def __enter__(self) -> OutputSet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if exc is not None:
            self.discard()
            if isinstance(exc, OSError):
                raise write_failure(self.folder, self.folder, exc) from exc

    def temporary(self, final: Path) -> Path:
        """A new empty file beside ``final``, hidden and removed unless committed.

        Its name (``.NAME.PID.RANDOM.tmp``) carries this process's id, so the leftovers of a killed
        process are never taken for outputs and are removed when the same output is written again.
        """
        prefix = _temporary_prefix(final)
        _remove_stale_temporaries(self.folder, prefix)
        # A unique name opened exclusively, not mkstemp (mode 0600): outputs get the user's umask,
        # so a colleague or a GIS server can read them as they can read the user's other files.
        path = self.folder / f"{prefix}{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            path.open("xb").close()
        except OSError as exc:
            raise write_failure(final, self.folder, exc) from exc
        self._temporaries.append(path)
        return path

    def raster(self, final: Path, info: RasterInfo, spec: RasterSpec) -> RasterOutput:
        """Opens a GeoTIFF output with the geography of the input raster ``info`` describes."""
        output = RasterOutput(self, final, info, spec)
        self._rasters.append(output)
        return output

    def text(self, final: Path, content: str) -> None:
        """Stages a small text file (style, summary) to be committed with the rasters."""
        path = self.temporary(final)
        try:
            path.write_text(content, encoding="utf-8")
        except OSError as exc:
            raise write_failure(final, self.folder, exc) from exc
        self._pending.append((path, final))

    def stage(self, temporary: Path, final: Path) -> None:
        """Marks a complete temporary file (from `temporary`) to be renamed to ``final`` at commit."""
        self._pending.append((temporary, final))

    def commit(self) -> None:
        """Finishes every raster and renames all outputs to their final names."""
        for output in self._rasters:
            output.finish()
        try:
            for temporary, final in self._pending:
                temporary.replace(final)
        except OSError as exc:
            raise write_failure(self.folder, self.folder, exc) from exc
        self._pending.clear()

    def discard(self) -> None:
        """Closes open rasters and removes every temporary file still present."""
        for output in self._rasters:
            output.close()
        for path in self._temporaries:
            path.unlink(missing_ok=True)
        self._pending.clear()


class RasterOutput:
    """One output GeoTIFF, written rows at a time, then turned into a COG by `OutputSet.commit`."""

    def __init__(self, outputs: OutputSet, final: Path, info: RasterInfo, spec: RasterSpec) -> None:
        self._outputs = outputs
        self.final = final
        self.spec = spec
        self._staging = outputs.temporary(final)
        self._statistics = RunningBandStatistics(spec.count, spec.nodata)
        profile: dict[str, Any] = {
            "driver": "GTiff",
            "width": info.width,
            "height": info.height,
            "count": spec.count,
            "dtype": spec.dtype,
            "nodata": spec.nodata,
            "tiled": False,
            "blockysize": 1,
            # GDAL's default (IF_NEEDED) judges by the pixels alone, not the overviews added later,
            # so a 3-4 GB staging file would overflow classic TIFF's 4 GB at the overview step.
            "BIGTIFF": "IF_SAFER",
        }
        if info.crs_wkt:
            profile["crs"] = rasterio.crs.CRS.from_wkt(info.crs_wkt)
        if info.crs_wkt or info.transform != (1.0, 0.0, 0.0, 0.0, 1.0, 0.0):
            profile["transform"] = rasterio.Affine(*info.transform)
        try:
            self._dataset: DatasetWriter | None = rasterio.open(self._staging, "w", **profile)
            self._dataset.update_tags(**outputs.tags)
            for band, description in enumerate(spec.descriptions, start=1):
                self._dataset.set_band_description(band, description)
            if spec.colors is not None:
                self._dataset.write_colormap(1, color_table(spec.colors, int(spec.nodata)))
        except GDAL_ERRORS as exc:
            raise write_failure(final, outputs.folder, exc) from exc

    def write_rows(self, row_off: int, data: np.ndarray) -> None:
        """Writes ``(count, rows, width)`` starting at ``row_off``."""
        assert self._dataset is not None, "write_rows after finish"
        window = Window(0, row_off, data.shape[2], data.shape[1])
        data = data.astype(self.spec.dtype, copy=False)
        self._statistics.add(data)
        try:
            self._dataset.write(data, window=window)
        except GDAL_ERRORS as exc:
            raise write_failure(self.final, self._outputs.folder, exc) from exc

    def close(self) -> None:
        if self._dataset is not None:
            self._dataset.close()
            self._dataset = None

    def finish(self) -> None:
        """Stores the band statistics, builds overviews and copies the staging file into a COG."""
        cog = self._outputs.temporary(self.final)
        predictor = "FLOATING_POINT" if np.dtype(self.spec.dtype).kind == "f" else "STANDARD"
        try:
            if self._dataset is not None:
                for band in range(self.spec.count):
                    self._dataset.update_tags(band + 1, **self._statistics.tags(band))
            self.close()
            with rasterio.open(self._staging, "r+") as staging:
                factors = overview_factors(staging.width, staging.height)
                if factors:
                    staging.build_overviews(factors, self.spec.resampling)
            rasterio.shutil.copy(
                self._staging,
                cog,
                driver="COG",
                COMPRESS="DEFLATE",
                PREDICTOR=predictor,
                BLOCKSIZE=COG_BLOCK_SIZE,
                OVERVIEWS="FORCE_USE_EXISTING" if factors else "NONE",
                BIGTIFF="IF_SAFER",
                NUM_THREADS="ALL_CPUS",  # prediction is over by now: compress on every core
            )
        except GDAL_ERRORS as exc:
            raise write_failure(self.final, self._outputs.folder, exc) from exc
        self._staging.unlink(missing_ok=True)
        self._outputs.stage(cog, self.final)


def check_writable_folder(folder: Path) -> None:
    """Creates ``folder`` if needed and proves that files can be created in it, before any work.

    Raises:
        OutputError: the folder cannot be created or written in; the message says what to do.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(
            f"Cannot write in the output folder {folder}: {exc.strerror}. Choose a writable folder."
        ) from exc


def write_failure(target: Path, folder: Path, exc: BaseException) -> OutputError:
    """The error for a failed write of ``target`` in ``folder``, saying plainly when the disk is full."""
    if _disk_full(folder, exc):
        return OutputError(
            f"Cannot write {target}: the disk is full. Free some space on the disk holding {folder}, "
            "or choose an output folder on another disk."
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
    return OutputError(
        f"Cannot write {target} ({reason}). "
        f"Check that {folder} is writable and has free space, or choose another output folder."
    )


def _disk_full(folder: Path, exc: BaseException) -> bool:
    """The system's error number says whether a write failed for lack of space; where GDAL dropped
    it, the space left on the folder's disk does."""
    link: BaseException | None = exc
    numbers: list[int] = []
    while link is not None:
        if isinstance(link, OSError) and link.errno is not None:
            numbers.append(link.errno)
        link = link.__cause__ or link.__context__
    if numbers:
        return any(number in DISK_FULL_ERRNOS for number in numbers)
    try:
        return shutil.disk_usage(folder).free < NEARLY_FULL_BYTES
    except OSError:
        return False


def _temporary_prefix(final: Path) -> str:
    """``.NAME.``, with NAME cut to TEMPORARY_NAME_BYTES (at a character boundary)."""
    return "." + final.name.encode()[:TEMPORARY_NAME_BYTES].decode(errors="ignore") + "."


def _remove_stale_temporaries(folder: Path, prefix: str) -> None:
    """Removes the temporaries (``PREFIX<pid>.<random>.tmp``) that a process which is gone left behind."""
    for path in folder.glob(glob.escape(prefix) + "*.tmp"):
        pid = path.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            path.unlink(missing_ok=True)


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def color_table(colors: dict[int, str], nodata: int) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table entries: each class opaque in its colour, nodata transparent."""
    table = {value: (*hex_to_rgb(color), 255) for value, color in colors.items()}
    table[nodata] = (0, 0, 0, 0)
    return table


@dataclass(frozen=True)
class QgisDocument:
    """A QGIS ``.qml`` style being built: its root element and its one raster renderer."""

    root: ElementTree.Element
    renderer: ElementTree.Element

    def text(self) -> str:
        ElementTree.indent(self.root)
        body = ElementTree.tostring(self.root, encoding="unicode")
        return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"


def qgis_document(renderer_type: str) -> QgisDocument:
    """An empty style for band 1 with a renderer of ``renderer_type`` (paletted, pseudocolour...)."""
    root = ElementTree.Element("qgis", version="3.28.0", styleCategories="Symbology")
    pipe = ElementTree.SubElement(root, "pipe")
    renderer = ElementTree.SubElement(
        pipe, "rasterrenderer", type=renderer_type, band="1", opacity="1", alphaBand="-1", nodataColor=""
    )
    ElementTree.SubElement(renderer, "rasterTransparency")
    ElementTree.SubElement(renderer, "minMaxOrigin")
    return QgisDocument(root, renderer)


def qgis_style(classes: Sequence[tuple[int, str, str]], transparent: Collection[int] = ()) -> str:
    """A QGIS ``.qml`` style with a paletted renderer: each ``(id, name, #rrggbb)`` a legend entry.

    QGIS applies a ``.qml`` named like the raster when it opens it, so the class names show in the
    legend, which a colour table alone cannot carry; neither can it carry transparency, so values
    in ``transparent`` are see-through only through the style.
    """
    style = qgis_document("paletted")
    palette = ElementTree.SubElement(style.renderer, "colorPalette")
    for value, name, color in classes:
        alpha = "0" if value in transparent else "255"
        ElementTree.SubElement(
            palette, "paletteEntry", value=str(value), color=color.lower(), alpha=alpha, label=name
        )
    return style.text()


def summary_json(summary: dict[str, Any]) -> str:
    """The summary as indented JSON; non-finite floats become null so any JSON reader accepts it."""
    return json.dumps(_finite(summary), indent=2, sort_keys=False) + "\n"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value
