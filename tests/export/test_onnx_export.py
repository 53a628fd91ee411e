"""ONNX export checked the way the QGIS Deepness plugin reads and runs it, on a real raster."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
from rasterio.windows import Window

from engine.errors import EngineError, OutputError
from engine.export.onnx_file import MAX_IR_VERSION, OPSET, export_onnx
from engine.inference.predict import PredictOptions, predict_many
from engine.models.file import read_metadata
from engine.progress import CancelToken, NullReporter

TILE, OVERLAP = 256, 32
# Deepness asks onnxruntime for CUDA first; on a CPU-only build onnxruntime warns and uses the CPU.
pytestmark = pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider'")


def write_windows(raster: Path, folder: Path, size: int) -> list[Path]:
    """Cuts the four corner windows of ``size`` pixels out of a real raster, as GeoTIFFs."""
    folder.mkdir()
    paths = []
    with rasterio.open(raster) as source:
        rows, cols = source.height - size, source.width - size
        for index, (top, left) in enumerate([(0, 0), (0, cols), (rows, 0), (rows, cols)]):
            window = Window(left, top, size, size)
            profile = {**source.profile, "width": size, "height": size}
            profile["transform"] = source.window_transform(window)
            paths.append(folder / f"window{index}.tif")
            with rasterio.open(paths[-1], "w", **profile) as target:
                target.write(source.read(window=window))
    return paths


def deepness_outputs(model: object, windows: list[Path]) -> np.ndarray:
    """A Deepness model's output ``(N, channels, H, W)`` for raw pixel values of the windows, in one
    batch (the batch dimension is dynamic), preprocessed by the plugin itself."""
    raw = []
    for path in windows:
        with rasterio.open(path) as dataset:
            raw.append(np.moveaxis(dataset.read(), 0, -1))
    return model.process(np.stack(raw))[0]


def our_outputs(model: Path, windows: list[Path], folder: Path) -> dict[str, np.ndarray]:
    """``modelai predict`` of each window in one tile, stacked by output key ``(N, H, W)``.

    In fp32, as the exported graph computes: on CPUs with native bf16 ``auto`` would take bf16, whose
    rounding (about 4e-3 relative) is not what these comparisons check.
    """
    options = PredictOptions(tile=TILE, overlap=OVERLAP, device="cpu", precision="fp32")
    results = predict_many(model, windows, folder, options, NullReporter(), CancelToken())
    arrays: dict[str, list[np.ndarray]] = {}
    for result in results:
        for key, path in result.outputs.items():
            if path.suffix == ".tif":
                with rasterio.open(path) as dataset:
                    arrays.setdefault(key, []).append(dataset.read(1))
    return {key: np.stack(values) for key, values in arrays.items()}


def metadata_values(path: Path) -> dict[str, object]:
    """Every metadata value parsed with json.loads, as Deepness parses them."""
    return {prop.key: json.loads(prop.value) for prop in onnx.load(path).metadata_props}


def test_segmentation_export_is_what_deepness_reads(
    segmentation_model: Path, deepness: dict[str, type], tmp_path: Path
) -> None:
    exported = export_onnx(segmentation_model, tmp_path / "veg.onnx")
    proto = onnx.load(exported.path)
    assert proto.ir_version <= MAX_IR_VERSION, "Deepness's onnxruntime refuses IR 10"
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) <= OPSET
    batch, bands, height, width = (
        d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim
    )
    assert isinstance(batch, str) and (bands, height, width) == (4, 512, 512)

    metadata = read_metadata(segmentation_model)
    assert metadata.raster_profile["ground_pixel_size_m"] == [5.0, 5.0]  # stored by training
    values = metadata_values(exported.path)
    assert values["model_type"] == "Segmentor"
    assert values["class_names"] == {str(i): c.name for i, c in enumerate(metadata.classes)}
    assert values["resolution"] == pytest.approx(500.0)  # 5 m pixels, in centimetres
    assert values["tile_size"] == values["tiles_size"] == 512
    assert values["tiles_overlap"] == 7  # 32 of 512 pixels, rounded up to a whole percent
    assert values["seg_thresh"] == 0.5
    offsets, scales = metadata.normalization["offset"], metadata.normalization["scale"]
    assert values["standardization_mean"] == pytest.approx([v / 255 for v in offsets])
    assert values["standardization_std"] == pytest.approx([v / 255 for v in scales])
    own = values["modelai"]
    assert own["bands"] == [1, 2, 3, 4] and own["normalization_in_graph"] is False
    assert own["classes"][1]["color"].startswith("#") and len(own["source_model"]["sha256"]) == 64

    model = deepness["Segmentor"](str(exported.path))
    assert model.get_metadata_model_type() == "Segmentor"
    assert model.get_outputs_channel_names() == [[c.name for c in metadata.classes]]
    assert model.get_metadata_resolution() == pytest.approx(500.0)
    assert model.get_metadata_tile_size() == 512
    assert model.get_model_batch_size() is None  # dynamic batch
    assert model.get_number_of_output_channels() == [2]


@pytest.fixture(scope="module")
def windows(rgbn: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return write_windows(rgbn, tmp_path_factory.mktemp("windows") / "w", TILE)


@pytest.mark.parametrize("which", ["segmentation_model", "percentile_model"])
def test_deepness_class_map_matches_modelai_predict(
    which: str, windows: list[Path], deepness: dict[str, type], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Raw pixels through Deepness's preprocessing and the ONNX graph give our class map."""
    model_path = request.getfixturevalue(which)
    exported = export_onnx(model_path, tmp_path / "m.onnx", tile=TILE, overlap=OVERLAP)
    in_graph = metadata_values(exported.path)["modelai"]["normalization_in_graph"]
    assert in_graph is (which == "percentile_model")
    theirs = deepness_outputs(deepness["Segmentor"](str(exported.path)), windows).argmax(axis=1)
    ours = our_outputs(model_path, windows, tmp_path / "ours")["classes"]
    agreement = float(np.mean(theirs == ours))
    print(f"{which}: Deepness/ONNX vs modelai predict class maps agree on {agreement:.5%} of pixels")
    assert agreement >= 0.999
    assert 0.05 < float(np.mean(ours == 1)) < 0.95, "the model learnt nothing to compare"


def test_anomaly_export_carries_its_error_head(
    anomaly_model: Path, windows: list[Path], deepness: dict[str, type], tmp_path: Path
) -> None:
    exported = export_onnx(anomaly_model, tmp_path / "ae.onnx", tile=TILE, overlap=OVERLAP)
    assert any("no anomaly-detection model type" in note for note in exported.notes)
    values = metadata_values(exported.path)
    threshold = read_metadata(anomaly_model).anomaly["threshold"]
    assert values["model_type"] == "Regressor"
    assert values["modelai"]["anomaly_threshold"] == threshold
    assert "Regressor" in values["modelai"]["note"]

    errors = deepness_outputs(deepness["Regressor"](str(exported.path)), windows)[:, 0]
    ours = our_outputs(anomaly_model, windows, tmp_path / "ours")
    relative = np.abs(errors - ours["anomaly"]) / np.maximum(ours["anomaly"], 1e-6)
    assert np.median(relative) < 1e-3
    agreement = float(np.mean((errors > threshold) == (ours["anomaly_mask"] == 1)))
    print(f"anomaly: Deepness/ONNX vs modelai predict masks agree on {agreement:.5%} of pixels")
    assert agreement >= 0.999


def test_export_refuses_bad_settings_and_existing_files(segmentation_model: Path, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match=r"--tile 250 is not a multiple of 4.*use 248"):
        export_onnx(segmentation_model, tmp_path / "a.onnx", tile=250)
    with pytest.raises(EngineError, match="--overlap 200"):
        export_onnx(segmentation_model, tmp_path / "a.onnx", tile=256, overlap=200)
    existing = tmp_path / "b.onnx"
    existing.write_bytes(b"keep")
    with pytest.raises(OutputError, match="already exists"):
        export_onnx(segmentation_model, existing, tile=64)
    assert existing.read_bytes() == b"keep"
    export_onnx(segmentation_model, existing, tile=64, overwrite=True)
    assert onnx.load(existing).graph.input[0].type.tensor_type.shape.dim[2].dim_value == 64
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
