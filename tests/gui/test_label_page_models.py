"""The Label page with models: classes taken from a real model file, and "Predict whole raster" after a
tiny training on the page (an ordinary prediction job whose class map lands on disk)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import rasterio

from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store
from engine.labels.store import labels_folder, load_classes
from engine.models.file import read_metadata
from engine.training import train
from tests.engine.runner_child import tiny_config, write_training_data
from tests.gui import test_label_page as label_page_tests
from tests.gui.test_label_page import TRAINING_TIMEOUT_S, open_scribbled, settle

home, page, scene = label_page_tests.home, label_page_tests.page, label_page_tests.scene  # its fixtures


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-epoch segmentation model of two synthetic scenes (a second or two)."""
    data = write_training_data(tmp_path_factory.mktemp("data"))
    return train(tiny_config(data, tmp_path_factory.mktemp("model") / "fields.safetensors")).model_path


def test_classes_from_a_model_keep_the_painted_labels(
    page, tasks, scene, home, trained_model, tmp_path, run, until
):
    raster, truth = scene
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"not a model")

    async def scenario() -> None:
        await open_scribbled(page, raster, truth, until)
        painted = page.tiles.read(0, 0, *truth.shape)
        before = page.classes.classes()

        assert not await page.importer.take_model_classes(damaged)
        assert "damaged.safetensors" in page.banner.text() and page.classes.classes() == before

        assert await page.importer.take_model_classes(trained_model)
        expected = [
            (info.name, info.color)
            for info in sorted(read_metadata(trained_model).classes, key=lambda c: c.id)
        ]
        assert [(label.name, label.color) for label in page.classes.classes()] == expected
        np.testing.assert_array_equal(page.tiles.read(0, 0, *truth.shape), painted)
        await page.autosave.flush()
        saved = load_classes(labels_folder(home, raster) / "labels.json")
        assert [(label.name, label.color) for label in saved] == expected
        await settle(tasks)

    run(scenario())


def test_predict_whole_raster_after_a_tiny_training_writes_the_class_map(
    page, tasks, scene, home, qt_loop, until
):
    raster, truth = scene

    async def scenario() -> None:
        await open_scribbled(page, raster, truth, until)
        assert not page.training.predict_button.isEnabled(), "no model yet"
        page.training.train_for.setCurrentIndex(0)  # epochs, not a time budget: a test stays short
        page.training.epochs.setValue(1)
        page.training.train_button.click()
        await until(lambda: page.label_jobs.model_path is not None, "the training job", timeout=240)
        await until(lambda: page.training.predict_button.isEnabled(), "the training to end", timeout=30)
        page.training.predict_button.click()
        assert page.label_jobs.running
        await until(lambda: not page.label_jobs.running, "the prediction job", timeout=240)
        await settle(tasks)

    qt_loop.run_until_complete(asyncio.wait_for(scenario(), TRAINING_TIMEOUT_S))
    outputs = home / "outputs" / page.label_jobs.model_path.stem
    assert "Class map written to" in page.training.state.text()
    class_maps = sorted(outputs.glob("*.tif"))
    assert class_maps, f"no output in {outputs}"
    with rasterio.open(class_maps[0]) as written, rasterio.open(raster) as source:
        assert written.transform == source.transform and written.crs == source.crs
        assert (written.width, written.height) == (source.width, source.height)
    with open_store(home) as store:
        jobs = {job.kind: job.status for job in store.list_jobs()}
    assert jobs == {"train-segmentation": JobStatus.SUCCEEDED, "predict": JobStatus.SUCCEEDED}
