"""Bad and awkward rasters through ``modelai predict`` and the engine: refused clearly, or predicted
with their geography intact."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.errors import BandMismatchError, RasterError
from engine.inference.checks import check_compatibility
from engine.inference.predict import PredictOptions, predict_raster
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store, run, submit
from engine.jobs.specs import PredictSpec
from engine.models.file import read_metadata
from engine.progress import CancelToken, NullReporter, RecordingReporter
from tests.bad_inputs.conftest import (
    TINY_TRAINING,
    assert_failed_job,
    assert_refused_before_any_job,
    leftovers,
    recorded_jobs,
)
from tests.engine.test_inference import save_test_model
from tests.rasters import corrupt_block, write_raster

SMALL_TILES = ["--tile", "64", "--overlap", "16"]


def _text_file(folder: Path, *_: object) -> Path:
    path = folder / "notes.tif"
    path.write_text("field notes, not an image\n")
    return path


def _renamed_png(folder: Path, *_: object) -> Path:
    png = folder / "photo.png"
    with rasterio.open(png, "w", driver="PNG", width=8, height=8, count=4, dtype="uint16") as dataset:
        dataset.write(np.ones((4, 8, 8), dtype=np.uint16))
    return png.rename(folder / "photo.tif")


def _zero_bytes(folder: Path, *_: object) -> Path:
    path = folder / "empty.tif"
    path.write_bytes(b"")
    return path


def _truncated(folder: Path, *_: object) -> Path:
    data = np.random.default_rng(0).integers(0, 60000, size=(4, 300, 300), dtype=np.uint16)
    whole = write_raster(folder / "whole.tif", data)
    cut = folder / "cut.tif"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    whole.unlink()
    return cut


REFUSED_RASTERS = {
    "not a raster": (_text_file, "not a raster that GDAL can read", "export it again"),
    "renamed PNG": (_renamed_png, "this is a PNG file, not a GeoTIFF", "Export it as GeoTIFF"),
    "zero bytes": (_zero_bytes, "the file is empty (0 bytes)", "Copy or export it again"),
    "truncated GeoTIFF": (_truncated, "truncated or corrupt", "copy or export it again"),
    "corrupt.tif": (
        lambda folder, shared: shared("rasterio/corrupt.tif"),
        "pixels cannot be read (TIFFFillTile",
        "copy or export it again",
    ),
    "all-nodata.tif": (
        lambda folder, shared: shared("rasterio/all-nodata.tif"),
        "every pixel is nodata",
        "choose a raster that contains data",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED_RASTERS))
def test_unreadable_rasters_are_refused_before_a_job_is_queued(
    case, four_band_model, modelai, shared_data, isolated_home, tmp_path
):
    make, problem, fix = REFUSED_RASTERS[case]
    raster = make(tmp_path, shared_data)
    output = tmp_path / "out"
    result = modelai("predict", four_band_model, raster, "-o", output)
    assert_refused_before_any_job(result, isolated_home, output, raster, problem, fix)

    spec = PredictSpec(four_band_model, [raster], output)
    with open_store() as store, pytest.raises(RasterError, match=re.escape(str(raster))):
        submit(store, spec)
    with pytest.raises(RasterError, match=re.escape(problem)):
        predict_raster(four_band_model, raster, output, PredictOptions(), NullReporter(), CancelToken())
    assert leftovers(output) == [] and recorded_jobs(isolated_home) == []


def test_bad_raster_in_a_real_process_prints_one_line_and_no_traceback(four_band_model, tmp_path):
    raster = _truncated(tmp_path)
    command = [sys.executable, "-m", "engine", "predict", str(four_band_model), str(raster)]
    done = subprocess.run(
        [*command, "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("modelai: error: ") and str(raster) in line


def damaged_in_the_middle(path: Path) -> Path:
    """A tiled, compressed GeoTIFF whose tile in block row 1 of 8 holds garbage. The header, the first
    and last pixels and the central window that validation reads are intact, so the damage is met
    only once prediction reaches it."""
    data = np.random.default_rng(3).integers(500, 5000, size=(4, 512, 512), dtype=np.uint16)
    write_raster(path, data)
    with rasterio.open(path) as plain:
        profile = plain.profile | {"tiled": True, "blockxsize": 64, "blockysize": 64, "compress": "deflate"}
    with rasterio.open(path, "w", **profile) as tiled:
        tiled.write(data)
    return corrupt_block(path, column=0, row=1)


def test_corrupt_tile_met_half_way_fails_the_job_and_leaves_nothing(
    four_band_model, modelai, isolated_home, tmp_path
):
    raster = damaged_in_the_middle(tmp_path / "damaged.tif")
    output = tmp_path / "out"
    result = modelai("predict", four_band_model, raster, "-o", output, "--tile", "64", "--overlap", "0")
    job = assert_failed_job(result, isolated_home, output, raster, "rows 64", "export it again")
    assert "predict" in result.err.splitlines()[0], "the error must come after prediction started"
    assert "ZIPDecode" in job.error_message and "RasterError" in job.error_detail

    reporter = RecordingReporter()
    spec = PredictSpec(four_band_model, [raster], output, PredictOptions(tile=64, overlap=0, batch_size=1))
    with open_store() as store, pytest.raises(RasterError, match="rows 64"):
        run(store, spec, reporter, CancelToken())
    assert reporter.progress and reporter.progress[-1].done < reporter.progress[-1].total
    assert [j.status for j in recorded_jobs(isolated_home)] == [JobStatus.FAILED] * 2
    assert leftovers(output) == []


def reference_invalid(path: Path) -> np.ndarray:
    """Where GDAL itself masks the raster (nodata, NaN nodata, alpha band): the output's nodata."""
    with rasterio.open(path) as dataset:
        return dataset.dataset_mask() == 0


def with_nan_holes(folder: Path) -> Path:
    data = np.random.default_rng(2).normal(0.3, 0.1, size=(1, 70, 90)).astype(np.float32)
    data[0, 10:25, 30:60] = np.nan
    return write_raster(folder / "holes.tif", data, nodata=float("nan"))


GEOGRAPHY_CASES = {
    "rotated transform, no CRS": ("rasterio/rotated.tif", [1], "uint8", "has no CRS"),
    "NaN nodata, no CRS": ("rasterio/float_nan.tif", [1], "float32", "has no CRS"),
    "ESRI WKT CRS": ("rasterio/test_esri_wkt.tif", [1], "uint16", None),
    "geographic CRS": ("eo-learn/import-tiff-test2.tiff", [1, 2, 3, 4, 5], "float32", None),
    "float64": ("solaris/ms1.tif", [1, 2, 3, 4], "float64", None),
    "nodata -3.4e38": ("rasterio/float_raster_with_nodata.tif", [1], "float32", None),
    "alpha band, constant bands": ("rasterio/RGBA.uint16.tif", [1, 2, 3], "uint16", None),
    "float32 NaN holes": (None, [1], "float32", None),
}


@pytest.mark.parametrize("case", list(GEOGRAPHY_CASES))
def test_awkward_rasters_predict_with_their_geography_and_nodata_intact(
    case, modelai, shared_data, isolated_home, tmp_path
):
    relative, bands, dtype, warning = GEOGRAPHY_CASES[case]
    raster = shared_data(relative) if relative else with_nan_holes(tmp_path)
    hyperparameters = {"in_channels": len(bands), "num_classes": 3, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "model.safetensors", "unet", hyperparameters, bands, dtype)
    result = modelai("predict", model, raster, "-o", tmp_path / "cli", *SMALL_TILES, "--probabilities")
    assert result.code == 0, result.err
    assert (warning is None) == ("warning:" not in result.err)
    [job] = recorded_jobs(isolated_home)
    assert job.status is JobStatus.SUCCEEDED

    reporter = RecordingReporter()
    options = PredictOptions(tile=64, overlap=16, probabilities=True)
    api = predict_raster(model, raster, tmp_path / "api", options, reporter, CancelToken())
    if warning:
        assert any(warning in text for text in reporter.warnings())
    else:
        assert reporter.warnings() == []
    invalid = reference_invalid(raster)
    with rasterio.open(raster) as source:
        for folder in (tmp_path / "cli", tmp_path / "api"):
            with rasterio.open(folder / api.outputs["classes"].name) as classes:
                assert classes.crs == source.crs and classes.transform == source.transform
                assert classes.shape == source.shape
                assert np.array_equal(classes.read(1) == 255, invalid)
        crs_wkt = source.crs.to_wkt() if source.crs else None
        transform = source.transform
    with rasterio.open(api.outputs["probabilities"]) as probabilities:
        values = probabilities.read()
    assert np.isnan(values[:, invalid]).all() and np.isfinite(values[:, ~invalid]).all()
    summary = json.loads(api.outputs["summary"].read_text())
    assert summary["valid_pixels"] == int((~invalid).sum())
    if crs_wkt is None:
        assert summary["area_unit"] == "square map units (no CRS)"
    elif case == "geographic CRS":
        assert summary["area_unit"] == "square metres" and summary["crs"] == "EPSG:4326"
    elif case == "ESRI WKT CRS":
        assert summary["crs"] == "ESRI:102039"
    if case == "rotated transform, no CRS":
        assert transform.b != 0 and transform.d != 0, "the sample must really be rotated"


@pytest.mark.parametrize(("height", "width"), [(1, 1), (1, 100_000)])
def test_one_pixel_and_one_row_strip_predict_to_the_right_size(
    height, width, four_band_model, modelai, isolated_home, tmp_path
):
    data = np.random.default_rng(1).integers(500, 5000, size=(4, height, width), dtype=np.uint16)
    raster = write_raster(tmp_path / "thin.tif", data)
    result = modelai("predict", four_band_model, raster, "-o", tmp_path / "cli")
    assert result.code == 0, result.err
    api = predict_raster(
        four_band_model, raster, tmp_path / "api", PredictOptions(), NullReporter(), CancelToken()
    )
    for folder in (tmp_path / "cli", tmp_path / "api"):
        with rasterio.open(folder / "thin_classes.tif") as classes:
            assert classes.shape == (height, width)
            assert set(np.unique(classes.read(1))) <= {0, 1}
    assert api.summary["valid_pixels"] == height * width
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED]


@pytest.mark.parametrize("count", [1, 13])
def test_other_band_counts_than_the_training_rasters_are_refused_naming_both(
    count, four_band_model, modelai, isolated_home, tmp_path
):
    data = np.random.default_rng(count).integers(500, 5000, size=(count, 30, 30), dtype=np.uint16)
    raster = write_raster(tmp_path / f"bands{count}.tif", data)
    output = tmp_path / "out"
    result = modelai("predict", four_band_model, raster, "-o", output)
    assert_refused_before_any_job(
        result, isolated_home, output, raster, "four.safetensors expects 4 band(s) (1,2,3,4) of uint16 "
        f"from 4-band rasters; the raster has {count} band(s)", "train a model on rasters like this one",
    )  # fmt: skip
    assert read_metadata(four_band_model).band_count == 4
    with pytest.raises(BandMismatchError, match=f"{count} band"):
        check_compatibility(read_metadata(four_band_model), raster)


def test_constant_bands_train_with_a_warning_and_predict_finite_maps(
    modelai, shared_data, isolated_home, tmp_path
):
    """RGBA.uint16.tif: bands 1–3 hold one value (zero variance), band 4 is an alpha mask."""
    raster, model = shared_data("rasterio/RGBA.uint16.tif"), tmp_path / "constant.safetensors"
    trained = modelai("train", "anomaly", raster, "-o", model, *TINY_TRAINING, "--val-fraction", "0.1")
    assert trained.code == 0, trained.err
    assert "warning: Band(s) 1, 2, 3 of RGBA.uint16.tif are constant" in trained.err
    assert read_metadata(model).normalization["constant_bands"] == [0, 1, 2]
    result = predict_raster(model, raster, tmp_path / "out", PredictOptions(), NullReporter(), CancelToken())
    with rasterio.open(result.outputs["anomaly"]) as heat_map:
        heat = heat_map.read(1)
    invalid = reference_invalid(raster)
    assert invalid.any() and np.isnan(heat[invalid]).all() and np.isfinite(heat[~invalid]).all()
    assert [job.status for job in recorded_jobs(isolated_home)] == [JobStatus.SUCCEEDED]
