"""Ground areas of pixels (engine.geodesy.pixel_areas) against an equal-area reference from PROJ."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from rasterio.crs import CRS
from rasterio.transform import Affine
from rasterio.warp import transform as warp_transform

from engine.geodesy.pixel_areas import PixelAreas
from engine.inference.predict import PredictOptions, predict_raster
from engine.progress import CancelToken, NullReporter
from engine.rasters.read import read_info
from tests.engine.test_inference import save_test_model
from tests.rasters import write_raster

# Lambert azimuthal equal-area on WGS 84, centred near the test rasters: planar areas are true.
EQUAL_AREA = CRS.from_proj4("+proj=laea +lat_0=45 +lon_0=10 +ellps=WGS84 +units=m +no_defs")
EDGE_POINTS = 200


def footprint_area(crs: str, transform: Affine, width: int, height: int) -> float:
    """The raster's outline, densified, taken to the equal-area CRS by PROJ; its planar area."""
    steps = np.linspace(0, 1, EDGE_POINTS, endpoint=False)
    cols = np.concatenate(
        [steps * width, np.full(EDGE_POINTS, width), (1 - steps) * width, np.zeros(EDGE_POINTS)]
    )
    rows = np.concatenate(
        [np.zeros(EDGE_POINTS), steps * height, np.full(EDGE_POINTS, height), (1 - steps) * height]
    )
    xs, ys = transform * (cols, rows)
    x, y = (np.array(v) for v in warp_transform(crs, EQUAL_AREA, xs.tolist(), ys.tolist()))
    return abs(float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))) / 2


def raster_at_45_degrees(tmp_path: Path, crs: str, pixel: float, size: int = 60) -> tuple[Path, Affine]:
    (x,), (y,) = warp_transform("EPSG:4326", crs, [10.0], [45.5])
    transform = Affine(pixel, 0, x, 0, -pixel, y)
    data = np.random.default_rng(0).integers(0, 200, size=(1, size, size), dtype=np.uint8)
    return write_raster(
        tmp_path / f"{crs.replace(':', '')}.tif", data, crs=crs, transform=transform
    ), transform


@pytest.mark.parametrize(("crs", "pixel"), [("EPSG:3857", 500.0), ("EPSG:4326", 0.005)])
def test_pixel_areas_sum_to_the_equal_area_footprint(tmp_path: Path, crs: str, pixel: float) -> None:
    path, transform = raster_at_45_degrees(tmp_path, crs, pixel)
    areas = PixelAreas(read_info(path))
    labels = np.zeros((60, 60), dtype=np.intp)
    labels[:, 30:] = 1
    total = areas.sum_by_label(labels, np.ones((60, 60), dtype=bool), 0, 2)
    reference = footprint_area(crs, transform, 60, 60)
    assert areas.unit == "square metres"
    assert total.sum() == pytest.approx(reference, rel=1e-5)
    if crs == "EPSG:3857":  # Mercator inflates areas by 1/cos²(latitude): twice the truth at 45°
        planar = 60 * 60 * pixel * pixel
        assert planar / total.sum() == pytest.approx(1 / math.cos(math.radians(45.35)) ** 2, rel=0.01)


def test_a_rotated_utm_raster_gets_areas_per_column_too(tmp_path: Path) -> None:
    """Far from the central meridian UTM's scale factor varies across a row; areas follow it."""
    transform = Affine(86.60254, 50.0, 200_000, 50.0, -86.60254, 5_000_000)
    data = np.zeros((1, 40, 400), dtype=np.uint8)
    path = write_raster(tmp_path / "utm.tif", data, crs="EPSG:32632", transform=transform)
    areas = PixelAreas(read_info(path))
    total = areas.sum_by_label(np.zeros((40, 400), np.intp), np.ones((40, 400), bool), 0, 1)[0]
    assert total == pytest.approx(footprint_area("EPSG:32632", transform, 400, 40), rel=1e-5)


def test_without_a_crs_areas_stay_in_map_units(tmp_path: Path) -> None:
    path = write_raster(tmp_path / "plain.tif", np.zeros((1, 10, 10), np.uint8), crs=None, pixel=2.0)
    areas = PixelAreas(read_info(path))
    assert (areas.unit, areas.centre_pixel_area()) == ("square map units (no CRS)", 4.0)
    assert "no CRS" in areas.method


def test_prediction_summaries_report_ground_areas_in_m2_and_ha(tmp_path: Path) -> None:
    path, transform = raster_at_45_degrees(tmp_path, "EPSG:3857", 100.0, size=64)
    hyperparameters = {"in_channels": 1, "num_classes": 2, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "m.safetensors", "unet", hyperparameters, [1], "uint8")
    options = PredictOptions(tile=64, overlap=16)
    summary = predict_raster(model, path, tmp_path / "out", options, NullReporter(), CancelToken()).summary
    total = sum(entry["area"] for entry in summary["classes"])
    assert summary["area_unit"] == "square metres" and "ellipsoid" in summary["area_method"]
    assert total == pytest.approx(footprint_area("EPSG:3857", transform, 64, 64), rel=1e-5)
    assert sum(entry["area_ha"] for entry in summary["classes"]) == pytest.approx(total / 1e4)
    assert summary["pixel_area"] == pytest.approx(100 * 100 * math.cos(math.radians(45.5)) ** 2, rel=0.02)
