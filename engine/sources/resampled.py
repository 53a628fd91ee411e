"""A raster seen at another pixel size, resampled by GDAL as windows are read (``--resample``).

A model trained on 5 m pixels sees objects at that scale; a 30 m raster must be read at 5 m for it
(and a 0.5 m one at 5 m). Rather than resample the whole raster into memory or a copy, a VRT file
describes the raster on the model's grid (same extent, pixels of the model's ground size); GDAL then
resamples only the windows that are read, with averaging when pixels grow and bilinear
interpolation when they shrink, leaving nodata pixels out of the average. Outputs written from it
are on that grid.
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from rasterio.crs import CRS

from engine.profiles.profile import raster_ground_pixel_size
from engine.rasters.read import RasterInfo
from engine.sources.gdal_paths import gdal_path

GDAL_TYPES = {
    "uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32", "int32": "Int32",
    "float32": "Float32", "float64": "Float64",
}  # fmt: skip
# Pixel sizes closer than this are left alone: resampling would only blur.
SAME_SIZE_TOLERANCE = 0.01


def resampled_shape(info: RasterInfo, ground_pixel_size: tuple[float, float]) -> tuple[int, int] | None:
    """``(width, height)`` of ``info``'s extent in pixels of ``ground_pixel_size`` metres, or None when
    its pixels are that size already or their ground size is unknown."""
    have = raster_ground_pixel_size(info)
    if have is None:
        return None
    factors = [h / t for h, t in zip(have, ground_pixel_size, strict=True)]
    if all(abs(f - 1) <= SAME_SIZE_TOLERANCE for f in factors):
        return None
    return max(1, round(info.width * factors[0])), max(1, round(info.height * factors[1]))


def write_resampled_vrt(info: RasterInfo, shape: tuple[int, int], target: Path) -> Path:
    """Writes a VRT of ``info``'s raster at ``shape`` (``(width, height)``), same extent and CRS."""
    width, height = shape
    x_scale, y_scale = info.width / width, info.height / height
    a, b, c, d, e, f = info.transform
    geotransform = ", ".join(repr(v) for v in (c, a * x_scale, b * y_scale, f, d * x_scale, e * y_scale))
    resampling = "average" if x_scale * y_scale > 1 else "bilinear"
    nodata = "" if info.nodata is None else repr(float(info.nodata))
    source = escape(gdal_path(info.path))
    bands = []
    for band in range(1, info.count + 1):
        description = escape(info.band_descriptions[band - 1] or "")
        bands.append(
            f'<VRTRasterBand dataType="{GDAL_TYPES[info.dtype]}" band="{band}">'
            f"<Description>{description}</Description>"
            + (f"<NoDataValue>{nodata}</NoDataValue>" if nodata else "")
            + f'<ComplexSource resampling="{resampling}">'
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>{band}</SourceBand>'
            f'<SrcRect xOff="0" yOff="0" xSize="{info.width}" ySize="{info.height}"/>'
            f'<DstRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>'
            + (f"<NODATA>{nodata}</NODATA>" if nodata else "")
            + "</ComplexSource></VRTRasterBand>"
        )
    srs = f"<SRS>{escape(CRS.from_wkt(info.crs_wkt).to_wkt())}</SRS>" if info.crs_wkt else ""
    target.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">{srs}'
        f"<GeoTransform>{geotransform}</GeoTransform>{''.join(bands)}</VRTDataset>",
        encoding="utf-8",
    )
    return target
