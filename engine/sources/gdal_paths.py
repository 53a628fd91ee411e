"""GDAL's own kinds of raster paths, and VRTs whose sources must exist.

GDAL reads rasters inside archives and on virtual file systems through paths such as
``/vsizip//data/scenes.zip/b4.tif``. A ``pathlib.Path`` collapses the double slash that marks the
archive's absolute path, so `gdal_path` puts it back before GDAL sees the name. A VRT (a band stack
from ``gdalbuildvrt -separate``, a mosaic) opens even when its source files are gone and fails
only when a pixel is read; `missing_sources` names them up front.
"""

from __future__ import annotations

from pathlib import Path

from rasterio.io import DatasetReader

VIRTUAL_PREFIX = "/vsi"


def is_virtual(path: Path | str) -> bool:
    """Whether ``path`` names a GDAL virtual file (``/vsizip/...``, ``/vsitar/...``), not a plain file."""
    return str(path).startswith(VIRTUAL_PREFIX)


def gdal_path(path: Path | str) -> str:
    """The name to give GDAL: ``path`` as is, or a virtual path with its absolute archive path restored."""
    text = str(path)
    if not is_virtual(text):
        return text
    scheme, _, rest = text[1:].partition("/")
    if rest.startswith(("/", "{")):
        return text
    parts = rest.split("/")
    for end in range(1, len(parts) + 1):
        if Path("/", *parts[:end]).is_file():
            return f"/{scheme}//{rest}"
    return text


def missing_sources(dataset: DatasetReader) -> list[str]:
    """The files a VRT refers to that do not exist (virtual paths are left to GDAL)."""
    if dataset.driver != "VRT":
        return []
    return [name for name in dataset.files[1:] if not is_virtual(name) and not Path(name).exists()]
