"""What outputs carry for GIS software: QGIS styles of the anomaly outputs, provenance tags, band
statistics; and the checks that keep large outputs writable (BigTIFF staging, free space)."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from engine.errors import OutputError
from engine.inference.outputs import OutputSet, RasterSpec
from engine.inference.predict import PredictionResult, PredictOptions, predict_raster
from engine.jobs.records import ArtifactKind
from engine.jobs.runner import open_store, run, submit
from engine.jobs.specs import PredictSpec
from engine.output_metadata.qgis_styles import ANOMALY_COLOR
from engine.progress import CancelToken, NullReporter
from engine.rasters.read import read_info
from tests.engine.test_inference import save_test_model
from tests.rasters import write_raster

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("outputs")


@pytest.fixture(scope="module")
def raster(folder: Path) -> Path:
    data = np.random.default_rng(0).integers(0, 200, size=(2, 80, 90)).astype(np.uint16)
    data[:, :5] = 0
    return write_raster(folder / "field.tif", data, nodata=0)


@pytest.fixture(scope="module")
def anomaly_model(folder: Path) -> Path:
    hyperparameters = {"in_channels": 2, "base_width": 4, "depth": 2, "latent_channels": 2}
    return save_test_model(
        folder / "ae.safetensors", "conv_autoencoder", hyperparameters, [1, 2], "uint16", threshold=THRESHOLD
    )


@pytest.fixture(scope="module")
def segmentation_model(folder: Path) -> Path:
    hyperparameters = {"in_channels": 2, "num_classes": 3, "base_width": 4, "depth": 2}
    return save_test_model(folder / "unet.safetensors", "unet", hyperparameters, [1, 2], "uint16")


def predict(model: Path, raster: Path, output: Path, **options: object) -> PredictionResult:
    settings = PredictOptions(tile=64, overlap=16, **options)
    return predict_raster(model, raster, output, settings, NullReporter(), CancelToken())


@pytest.fixture(scope="module")
def anomaly(anomaly_model: Path, raster: Path, folder: Path) -> PredictionResult:
    return predict(anomaly_model, raster, folder / "anomaly")


def palette(style: Path) -> dict[str, tuple[str, str, str]]:
    entries = ElementTree.parse(style).getroot().findall(".//colorPalette/paletteEntry")
    return {e.get("value"): (e.get("label"), e.get("color"), e.get("alpha")) for e in entries}


def test_the_anomaly_mask_draws_normal_transparent_and_anomalies_in_a_clear_colour(anomaly):
    style = anomaly.outputs["anomaly_mask_qml"]
    assert style.name == "field_anomaly_mask.qml", "QGIS applies a style named like the raster"
    assert palette(style) == {"0": ("normal", "#000000", "0"), "1": ("anomaly", ANOMALY_COLOR, "255")}
    with rasterio.open(anomaly.outputs["anomaly_mask"]) as mask:
        assert mask.colormap(1)[1][:3] == (255, 0, 255)


def test_the_heat_map_style_is_a_ramp_with_the_threshold_marked(anomaly):
    style = anomaly.outputs["anomaly_qml"]
    assert style.name == "field_anomaly.qml"
    renderer = ElementTree.parse(style).getroot().find(".//rasterrenderer")
    assert renderer.get("type") == "singlebandpseudocolor"
    items = renderer.findall(".//colorrampshader/item")
    values = [float(item.get("value")) for item in items]
    assert values == sorted(values) and len(set(values)) == len(values) == 3
    marked = [item for item in items if item.get("label").startswith("threshold")]
    assert [float(item.get("value")) for item in marked] == [THRESHOLD]
    assert items[0].get("alpha") == "0", "the lowest errors stay see-through"


def test_outputs_carry_provenance_tags_and_band_statistics(
    anomaly, anomaly_model, segmentation_model, raster, folder
):
    segmentation = predict(segmentation_model, raster, folder / "segmentation", probabilities=True)
    for model, result, keys in (
        (anomaly_model, anomaly, ("anomaly", "anomaly_mask")),
        (segmentation_model, segmentation, ("classes", "probabilities")),
    ):
        for key in keys:
            with rasterio.open(result.outputs[key]) as output:
                tags = output.tags()
                data = output.read(masked=True)
                band_tags = [output.tags(band) for band in range(1, output.count + 1)]
            assert tags["MODELAI_MODEL"] == model.name
            assert tags["MODELAI_MODEL_SHA256"] == hashlib.sha256(model.read_bytes()).hexdigest()
            assert tags["MODELAI_TASK"] == result.summary["task"]
            assert tags["MODELAI_SOURCE"] == "field.tif"
            assert tags["TIFFTAG_SOFTWARE"].startswith("ModelAI Desktop ")
            assert ("MODELAI_THRESHOLD" in tags) == (result.summary["task"] == "anomaly")
            for band, statistics in zip(data, band_tags, strict=True):
                valid = band.compressed().astype(np.float64)
                valid = valid[np.isfinite(valid)]
                assert float(statistics["STATISTICS_MINIMUM"]) == valid.min()
                assert float(statistics["STATISTICS_MAXIMUM"]) == valid.max()
                assert float(statistics["STATISTICS_MEAN"]) == pytest.approx(valid.mean(), rel=1e-6)
                assert float(statistics["STATISTICS_STDDEV"]) == pytest.approx(
                    valid.std(), rel=1e-6, abs=1e-9
                )
                assert float(statistics["STATISTICS_VALID_PERCENT"]) == pytest.approx(
                    100 * valid.size / (80 * 90), rel=1e-3
                )
    assert float(tags_of(anomaly, "anomaly")["MODELAI_THRESHOLD"]) == THRESHOLD


def tags_of(result: PredictionResult, key: str) -> dict[str, str]:
    with rasterio.open(result.outputs[key]) as output:
        return output.tags()


def test_an_anomaly_job_records_both_styles(anomaly_model, raster, tmp_path, isolated_home):
    with open_store() as store:
        outcome = run(store, PredictSpec(anomaly_model, [raster], tmp_path), NullReporter(), CancelToken())
        styles = sorted(a.path.name for a in store.artifacts(outcome.job_id) if a.kind is ArtifactKind.STYLE)
    assert styles == ["field_anomaly.qml", "field_anomaly_mask.qml"]


def test_a_staging_file_that_overviews_could_push_past_4_gb_is_a_bigtiff(tmp_path: Path) -> None:
    """3.2 GB of pixels fit a classic TIFF, but not with their overviews; nothing is really written
    (the staging file stays sparse), and discarding it removes it."""
    template = write_raster(tmp_path / "template.tif", np.zeros((1, 4, 4), np.uint8))
    info = read_info(template)
    big = type(info)(**{**info.__dict__, "width": 40_000, "height": 20_000})
    folder = tmp_path / "out"
    folder.mkdir()
    with OutputSet(folder) as outputs:
        spec = RasterSpec("float32", 1, 0.0, rasterio.enums.Resampling.average)  # zeros: no fill written
        outputs.raster(folder / "heat.tif", big, spec).close()  # GDAL writes the header on closing
        (staging,) = folder.glob(".*.tmp")
        with staging.open("rb") as file:
            assert file.read(4) == b"II+\x00", "a BigTIFF header (42 would be classic TIFF)"
        outputs.discard()
    assert list(folder.iterdir()) == []


def test_outputs_larger_than_the_free_space_are_refused_before_any_job(
    segmentation_model, tmp_path, isolated_home
):
    """A sparse 2,000,000 x 2,000,000 raster: its class map alone needs over 5 TB uncompressed."""
    huge = tmp_path / "huge.tif"
    profile = {
        "driver": "GTiff", "width": 2_000_000, "height": 2_000_000, "count": 2, "dtype": "uint16",
        "crs": "EPSG:32618", "transform": from_origin(0, 0, 1, 1), "tiled": True, "blockxsize": 4096,
        "blockysize": 4096, "sparse_ok": True, "BIGTIFF": "YES",
    }  # fmt: skip
    with rasterio.open(huge, "w", **profile) as dataset:
        dataset.write(np.ones((2, 16, 16), np.uint16), window=rasterio.windows.Window(0, 0, 16, 16))
    output = tmp_path / "out"
    with open_store() as store, pytest.raises(OutputError) as refused:
        submit(store, PredictSpec(segmentation_model, [huge], output))
    message = str(refused.value)
    assert f"Not enough free space in {output}" in message and "huge.tif need about 5,333" in message
    with open_store() as store:
        assert store.list_jobs() == []
