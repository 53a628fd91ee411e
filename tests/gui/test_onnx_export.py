"""The Models page's "Export to ONNX…": a real export from the page, its notes and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from engine.paths import app_home
from modelai_desktop.pages.models_page import ModelsPage
from tests.engine.test_inference import save_test_model

pytestmark = pytest.mark.gui


@pytest.fixture
def page(qtbot, tasks, isolated_home: Path) -> ModelsPage:
    models_page = ModelsPage(tasks, app_home(isolated_home))
    qtbot.addWidget(models_page)
    return models_page


@pytest.fixture
def model(page: ModelsPage) -> Path:
    """An untrained U-Net in the page's models folder, from rasters without a CRS."""
    hyperparameters = {"in_channels": 3, "num_classes": 2, "base_width": 4, "depth": 2}
    path = page.models_dir / "roofs.safetensors"
    return save_test_model(path, "unet", hyperparameters, [1, 2, 3], "uint8")


def test_export_from_the_page_writes_a_deepness_model(page, model, run, qtbot, tmp_path):
    assert not page.onnx_export.button.isEnabled()
    run(page.reload())
    assert page.onnx_export.button.isEnabled() and page.onnx_export.button.text() == "Export to ONNX…"
    target = tmp_path / "roofs.onnx"
    with qtbot.waitSignal(page.status_message) as status:
        exported = run(page.onnx_export.export(model, target))
    assert status.args == [f"Exported roofs.safetensors to {target} for QGIS Deepness."]
    values = {p.key: json.loads(p.value) for p in onnx.load(target).metadata_props}
    assert values["model_type"] == "Segmentor" and exported.tile == 512
    assert "set the map resolution in Deepness by hand" in page.banner.text()
    assert page.onnx_export.button.isEnabled()
    page.resize(1100, 600)
    page.grab().save(str(tmp_path / "models-page-export.png"))


def test_a_failed_export_says_why_in_the_banner(page, model, run, tmp_path):
    run(page.reload())
    not_a_folder = tmp_path / "notes.txt"
    not_a_folder.write_text("a file where a folder should be")
    assert run(page.onnx_export.export(model, not_a_folder / "x.onnx")) is None
    assert "Cannot write in the output folder" in page.banner.text()
    assert page.onnx_export.button.isEnabled()
