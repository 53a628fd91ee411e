"""Decimated previews: bounded size, overviews used, geography kept, validity and stretch rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from engine.errors import BandMismatchError, RasterError
from engine.rasters.preview import (
    PREVIEW_MAX_SIDE,
    percentile_limits,
    preview_shape,
    read_preview,
    render_rgba,
    stretch,
)
from engine.rasters.read import read_info
from tests.rasters import corrupt_block, write_raster

BIG = 6000
UTM_10M = from_origin(500000.0, 4500000.0, 10.0, 10.0)
FULL_VALUE, OVERVIEW_VALUE = 200, 0


def write(path: Path, data: np.ndarray, nodata: float | None = None, **profile: object) -> Path:
    return write_raster(path, data, nodata, **{"transform": UTM_10M, **profile})


@pytest.fixture(scope="module")
def big_raster(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """6000×6000×2 tiled uint8 whose overviews hold 0 while every full-resolution pixel is 200.

    The overviews are built before the pixels are written, so a preview showing 0 proves it was
    served from the overviews rather than from a read of the whole raster (288 MB as float32).
    """
    path = tmp_path_factory.mktemp("big") / "big.tif"
    profile = {
        "driver": "GTiff", "width": BIG, "height": BIG, "count": 2, "dtype": "uint8", "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate", "crs": "EPSG:32618",
        "transform": from_origin(600000.0, 5000000.0, 0.5, 0.5),
    }  # fmt: skip
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.build_overviews([2, 4, 8, 16], Resampling.nearest)
    strip = np.full((2, 1000, BIG), FULL_VALUE, dtype=np.uint8)
    with rasterio.open(path, "r+") as dataset:
        for row in range(0, BIG, 1000):
            dataset.write(strip, window=Window(0, row, BIG, 1000))
    return path


def test_preview_shape_fits_the_long_side_and_keeps_the_aspect():
    assert preview_shape(800, 600) == (600, 800)
    assert preview_shape(20000, 10000) == (512, 1024)
    assert preview_shape(71, 2475) == (1024, 29)
    assert preview_shape(100000, 10) == (1, 1024)


def test_a_big_raster_is_previewed_from_its_overviews(big_raster):
    info = read_info(big_raster)
    assert BIG * BIG * info.count * 4 > 200e6
    preview = read_preview(info)
    assert preview.shape == (PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
    assert preview.data.shape == (2, PREVIEW_MAX_SIDE, PREVIEW_MAX_SIDE)
    assert (preview.data == OVERVIEW_VALUE).all()
    assert preview.decimation == pytest.approx(BIG / PREVIEW_MAX_SIDE)
    with rasterio.open(big_raster) as dataset:
        assert dataset.read(1, window=Window(100, 100, 1, 1))[0, 0] == FULL_VALUE


def test_the_preview_transform_keeps_the_raster_extent(big_raster):
    info = read_info(big_raster)
    preview = read_preview(info, bands=[2], max_side=300)
    full = rasterio.Affine(*info.transform)
    assert preview.transform * (0, 0) == full * (0, 0)
    assert preview.transform * (300, 300) == pytest.approx(full * (BIG, BIG))
    assert preview.bands == (2,)


def test_nodata_alpha_and_nan_pixels_are_invalid(tmp_path):
    data = np.full((3, 20, 20), 50, dtype=np.uint16)
    data[:, :5, :] = 0
    data[0, 10, 10] = 0
    nodata = read_preview(read_info(write(tmp_path / "nodata.tif", data, nodata=0)))
    assert not nodata.valid[:5].any() and nodata.valid[5:].all()

    alpha = np.concatenate([np.full((1, 20, 20), 90, np.uint8), np.full((1, 20, 20), 255, np.uint8)])
    alpha[1, :, :4] = 0
    rgba = write(tmp_path / "alpha.tif", alpha, photometric="MINISBLACK", alpha="YES")
    with rasterio.open(rgba, "r+") as dataset:
        dataset.colorinterp = [rasterio.enums.ColorInterp.gray, rasterio.enums.ColorInterp.alpha]
    masked = read_preview(read_info(rgba))
    assert masked.bands == (1,)
    assert not masked.valid[:, :4].any() and masked.valid[:, 4:].all()

    floats = np.ones((1, 6, 6), dtype=np.float32)
    floats[0, 2, 3] = np.nan
    nan = read_preview(read_info(write(tmp_path / "nan.tif", floats)))
    assert nan.valid.sum() == 35 and nan.data[0, 2, 3] == 0.0


def test_average_resampling_ignores_nodata_at_data_edges(tmp_path):
    data = np.full((1, 400, 400), 100, dtype=np.uint8)
    data[:, :, :201] = 0
    preview = read_preview(read_info(write(tmp_path / "edge.tif", data, nodata=0)), max_side=100)
    assert preview.data[0][preview.valid].min() == 100


def test_band_values_follow_full_resolution_positions(tmp_path):
    data = np.arange(2 * 4 * 6, dtype=np.uint16).reshape(2, 4, 6)
    preview = read_preview(read_info(write(tmp_path / "small.tif", data)))
    assert preview.band_values(5.9, 3.2) == (float(data[0, 3, 5]), float(data[1, 3, 5]))
    assert preview.band_values(6, 0) is None
    with pytest.raises(BandMismatchError, match="band 3 is not in this preview"):
        preview.band_array(3)
    with pytest.raises(BandMismatchError, match="do not exist"):
        read_preview(preview.info, bands=[5])


def test_a_corrupt_tile_met_in_the_preview_raises_a_raster_error(tmp_path):
    data = np.random.default_rng(0).integers(0, 255, size=(1, 512, 512), dtype=np.uint8)
    path = write(
        tmp_path / "broken.tif", data, tiled=True, blockxsize=256, blockysize=256, compress="deflate"
    )
    corrupt_block(path, column=1, row=0, length=64)
    info = read_info(path)
    with pytest.raises(RasterError, match=r"broken\.tif: the preview cannot be read"):
        read_preview(info)


def test_percentile_limits_use_valid_pixels_only():
    values = np.arange(100, dtype=np.float32).reshape(10, 10)
    valid = np.ones((10, 10), dtype=bool)
    valid[0] = False
    low, high = percentile_limits(values, valid, (0.0, 100.0))
    assert (low, high) == (10.0, 99.0)
    assert percentile_limits(values, np.zeros_like(valid)) is None


def test_stretch_maps_limits_to_the_display_range_and_constant_bands_to_grey():
    assert stretch(np.array([0.0, 5.0, 10.0, 20.0]), (0.0, 10.0)).tolist() == [0, 127, 255, 255]
    assert stretch(np.array([3.0, 3.0]), (3.0, 3.0)).tolist() == [128, 128]


def test_render_rgba_composes_bands_and_makes_nodata_transparent(tmp_path):
    data = np.zeros((3, 10, 10), dtype=np.uint8)
    data[0, :, :5] = 200
    data[1] = np.arange(10, dtype=np.uint8)[None, :] + 1
    data[2] = 7
    data[:, 0, :] = 0
    preview = read_preview(read_info(write(tmp_path / "rgb.tif", data, nodata=0)))
    rgba = render_rgba(preview, (1, 2, 3), (0.0, 100.0))
    assert rgba.shape == (10, 10, 4) and rgba.dtype == np.uint8
    assert (rgba[0, :, 3] == 0).all() and (rgba[1:, :, 3] == 255).all()
    assert (rgba[1:, :5, 0] == 255).all() and (rgba[1:, 5:, 0] == 0).all()
    assert rgba[5, 0, 1] == 0 and rgba[5, 9, 1] == 255
    assert (rgba[1:, :, 2] == 128).all()

    lut = np.zeros((256, 4), dtype=np.uint8)
    lut[:, 1] = np.arange(256)
    single = render_rgba(preview, (2,), (0.0, 100.0), lut)
    assert (single[1:, :, 1] == rgba[1:, :, 1]).all() and (single[..., 0] == 0).all()
    grey = render_rgba(preview, (2,), (0.0, 100.0))
    assert (grey[1:, :, 0] == grey[1:, :, 2]).all()
    with pytest.raises(ValueError, match="one band or three"):
        render_rgba(preview, (1, 2))
