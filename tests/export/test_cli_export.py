"""``modelai models export-onnx``: output lines, one-line errors with exit 2, onnx missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import onnx
import pytest

from engine.cli import EXIT_BAD_INPUT, EXIT_OK, main
from tests.engine.test_inference import save_test_model


@pytest.fixture(scope="module")
def unet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained 3-class U-Net whose rasters had no CRS (so no resolution can be written)."""
    path = tmp_path_factory.mktemp("cli-export") / "unet.safetensors"
    hyperparameters = {"in_channels": 3, "num_classes": 3, "base_width": 4, "depth": 2}
    return save_test_model(path, "unet", hyperparameters, [1, 2, 3], "uint8", pixel_size=[0.5, 0.5])


def test_export_prints_what_deepness_reads(
    unet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "unet.onnx"
    assert main(["models", "export-onnx", str(unet), "-o", str(output), "--tile", "128"]) == EXIT_OK
    printed = capsys.readouterr().out
    printed.encode("cp1252")
    assert "Segmentor, tile 128 px, overlap 25 %, resolution unknown" in printed
    assert "set the map resolution in Deepness by hand" in printed
    values = {p.key: json.loads(p.value) for p in onnx.load(output).metadata_props}
    assert "resolution" not in values
    assert values["seg_thresh"] == 0.33  # three classes: never below the best softmax probability

    assert main(["models", "export-onnx", str(unet), "-o", str(output)]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "already exists. Use --overwrite" in error


def test_export_without_onnx_says_what_to_install(
    unet: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)  # what Python does when the package is absent
    assert main(["models", "export-onnx", str(unet), "-o", str(tmp_path / "x.onnx")]) == EXIT_BAD_INPUT
    assert "pip install 'modelai-desktop[onnx]'" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
