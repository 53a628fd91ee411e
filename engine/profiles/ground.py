"""Pixel sizes in metres on the ground, whatever the CRS's unit.

Pixel sizes in map units cannot be compared across CRSs: a 0.0001-degree pixel is about 11 m at the
equator and 7 m at 50 degrees north. Projected units go through the CRS's own factor to metres;
degrees are converted at the raster's latitude with the WGS84 ellipsoid's series for the length
of a degree.
"""

from __future__ import annotations

import math

from rasterio.crs import CRS
from rasterio.errors import CRSError


def metres_per_degree(latitude: float) -> tuple[float, float]:
    """Length on the ground of one degree of longitude and one of latitude at ``latitude`` (WGS84)."""
    phi = math.radians(latitude)
    along_parallel = 111_412.84 * math.cos(phi) - 93.5 * math.cos(3 * phi)
    along_meridian = 111_132.92 - 559.82 * math.cos(2 * phi) + 1.175 * math.cos(4 * phi)
    return along_parallel, along_meridian


def ground_pixel_size(
    pixel_size: tuple[float, float] | list[float], crs: str | None, latitude: float | None = None
) -> tuple[float, float] | None:
    """Pixel width and height in metres, or None where the CRS (or, for degrees, the latitude) is unknown.

    ``crs`` is anything rasterio's ``CRS.from_user_input`` takes (``EPSG:32618``, WKT).
    """
    if not crs:
        return None
    try:
        parsed = CRS.from_user_input(crs)
    except CRSError:
        return None
    width, height = pixel_size
    if parsed.is_geographic:
        if latitude is None or not -90 <= latitude <= 90:
            return None
        along_parallel, along_meridian = metres_per_degree(latitude)
        return width * along_parallel, height * along_meridian
    try:
        factor = parsed.linear_units_factor[1]
    except CRSError:
        return None
    return width * factor, height * factor
