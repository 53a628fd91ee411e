"""The profile of the rasters a model was trained on, stored in its metadata (``raster_profile``).

Band names come from the band descriptions; wavelengths from GDAL's ``IMAGERY`` metadata
(``CENTRAL_WAVELENGTH_UM``, GDAL 3.10) or an ENVI header's ``wavelength``. The pixel size is kept in
map units with its unit, and in metres on the ground (degrees converted at the raster's latitude),
which is what prediction compares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from rasterio.crs import CRS
from rasterio.io import DatasetReader

from engine.profiles.ground import ground_pixel_size
from engine.rasters.read import RasterInfo, open_raster


def band_names(info: RasterInfo, bands: Sequence[int]) -> list[str | None]:
    """The descriptions of ``bands`` (1-based), None where a band has none."""
    return [(info.band_descriptions[band - 1] or "").strip() or None for band in bands]


def centre_latitude(info: RasterInfo) -> float | None:
    """The latitude of the raster's centre where its CRS is geographic (x is longitude, y latitude)."""
    if not info.is_geographic:
        return None
    _, _, _, d, e, f = info.transform
    return d * info.width / 2 + e * info.height / 2 + f


def raster_ground_pixel_size(info: RasterInfo) -> tuple[float, float] | None:
    """The raster's pixel size in metres on the ground, None where the CRS does not tell."""
    return ground_pixel_size(info.pixel_size, info.crs_wkt, centre_latitude(info))


def pixel_unit(info: RasterInfo) -> str | None:
    """The CRS's unit (``metre``, ``degree``, ``US survey foot``...), None without a CRS."""
    return CRS.from_wkt(info.crs_wkt).units_factor[0] if info.crs_wkt else None


def _wavelength(dataset: DatasetReader, band: int) -> float | None:
    """A band's central wavelength in micrometres, where the file records one."""
    imagery = dataset.tags(band, ns="IMAGERY").get("CENTRAL_WAVELENGTH_UM")
    envi = dataset.tags(band).get("wavelength")
    units = dataset.tags(band).get("wavelength_units", "").lower()
    for text, to_micrometres in ((imagery, 1.0), (envi, 1e-3 if units.startswith("nano") else 1.0)):
        try:
            value = float(text) * to_micrometres if text else math.nan
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            return value
    return None


def describe_rasters(info: RasterInfo, bands: Sequence[int]) -> dict[str, Any]:
    """The profile stored with a model trained on rasters like ``info`` (training checks they agree)."""
    with open_raster(info.path) as dataset:
        wavelengths = [_wavelength(dataset, band) for band in bands]
    ground = raster_ground_pixel_size(info)
    return {
        "band_names": band_names(info, bands),
        "wavelengths_um": wavelengths,
        "pixel_size": list(info.pixel_size),
        "pixel_unit": pixel_unit(info),
        "ground_pixel_size_m": list(ground) if ground else None,
        "crs": info.crs,
    }
