"""The whole window on a 1024 × 700 screen (many field laptops): every page usable without hunting.

A person with data loaded goes through every page; on each, the buttons that do the page's work
must lie inside the window (no scrolling or resizing needed), and the cursor readout must have
room for a many-band raster. A grab of each page is saved beside the test's files to look at.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QRect
from PySide6.QtWidgets import QWidget

from engine.synthetic import CLASS_NAMES, write_scene
from engine.training import train
from tests.engine.runner_child import tiny_config, write_training_data

pytestmark = pytest.mark.gui
SMALL_SCREEN = (1024, 700)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = write_training_data(tmp_path_factory.mktemp("data"))
    config = tiny_config(
        data, tmp_path_factory.mktemp("model") / "a model with a long descriptive name.safetensors"
    )
    config.class_names = list(CLASS_NAMES)
    return train(config).model_path


def visible_in(window: QWidget, widget: QWidget) -> bool:
    """The widget is shown and its whole rectangle lies inside the window's."""
    if not widget.isVisible() or widget.width() <= 0 or widget.height() <= 0:
        return False
    top_left = widget.mapTo(window, widget.rect().topLeft())
    return window.rect().contains(QRect(top_left, widget.size()))


def test_every_page_is_usable_at_1024_by_700(window, run, until, model, tmp_path):
    scenes = tmp_path / "scenes"
    for index in range(2):
        write_scene(scenes, f"scene{index}", size=(96, 96), seed=index)
    window.resize(*SMALL_SCREEN)
    window.show()

    async def scenario() -> None:
        await window.data_page.load_paths([scenes / "images"])
        await window.predict_page.load_model(model)
        window.train_page.set_data("segmentation", [scenes / "images"], [scenes / "masks"])
        await window.tasks.wait_idle()

    run(scenario())
    assert (window.width(), window.height()) == SMALL_SCREEN, "the window can be as small as the screen"
    key_controls = {
        "Data": [window.data_page.raster_view.fit_button, window.data_page.raster_view.controls.red],
        "Train": [window.train_page.start_button, window.train_page.run_view.progress_panel],
        "Predict": [window.predict_page.run_button, window.predict_page.view.controls.blue],
        "Jobs": [window.jobs_page.rerun_button, window.jobs_page.cancel_button],
        "Models": [window.models_page.predict_button, window.models_page.show_button],
    }
    for page, controls in key_controls.items():
        window.show_page(page)
        run(window.tasks.wait_idle())
        window.grab().save(str(tmp_path / f"{page.lower()}-1024x700.png"))
        outside = [
            control.objectName() or type(control).__name__
            for control in controls
            if not visible_in(window, control)
        ]
        assert not outside, f"{page} page at 1024 x 700: {outside} not inside the window"
        band_box = window.data_page.raster_view.controls.red
        assert band_box.width() >= band_box.minimumWidth() > 40, "band boxes never collapse to bare arrows"

    window.show_page("Data")
    view = window.data_page.raster_view
    readout = view.describe_position(10.5, 10.5)
    view.cursor_label.setText(readout)
    run(window.tasks.wait_idle())
    assert "B5" in readout and visible_in(window, view.cursor_label)
    fits = view.cursor_label.heightForWidth(view.cursor_label.width()) <= view.cursor_label.height()
    assert fits, "the whole readout of five bands is shown, wrapped if needed"
    assert np.isfinite(view.preview.data).all()
