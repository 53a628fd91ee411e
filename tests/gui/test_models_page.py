"""The Models page: listing models with their metadata, editing classes into the file, file actions."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

from engine.errors import ModelFileError
from engine.models.file import load_model, read_metadata, update_metadata
from engine.models.metadata import ClassInfo
from engine.paths import app_home
from engine.training import train
from modelai_desktop.pages.models_page import ModelsPage, color_dialog_title
from modelai_desktop.widgets.model_details import COLOR_COLUMN, NAME_COLUMN
from tests.engine.runner_child import tiny_config, write_training_data

pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-epoch segmentation model of two synthetic scenes (about 2 s)."""
    data = write_training_data(tmp_path_factory.mktemp("data"))
    output = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    return train(tiny_config(data, output, epochs=2)).model_path


@pytest.fixture
def home(isolated_home: Path) -> Path:
    return app_home(isolated_home)


@pytest.fixture
def page(qtbot, tasks, home) -> ModelsPage:
    models_page = ModelsPage(tasks, home)
    qtbot.addWidget(models_page)
    return models_page


@pytest.fixture
def model(trained_model: Path, home: Path) -> Path:
    """A copy of the trained model in the data folder's models folder, for this test to change."""
    return Path(shutil.copy(trained_model, home / "models" / "fields.safetensors"))


def test_the_page_lists_the_models_with_their_metadata_and_loss_curve(page, model, run):
    run(page.reload())
    metadata = read_metadata(model)
    assert [entry.path for entry in page.entries()] == [model]
    assert page.table.item(0, 0).text() == "fields" and page.table.item(0, 1).text() == "Segmentation"
    details = page.details
    assert details.title.text() == "fields"
    assert details.fields["Bands"].text().startswith("1, 2, 3, 4, 5 of uint16")
    assert details.class_table.rowCount() == len(metadata.classes) >= 2
    assert "Epochs: 2 of 2" in details.training_label.text()
    history = metadata.training["history"]
    epochs, losses = details.loss_plot.series("train")
    assert epochs.tolist() == [1, 2]
    assert np.allclose(losses, [entry["train_loss"] for entry in history])
    assert details.loss_plot.series("mean_iou")[1].size == 2
    assert page.predict_button.isEnabled()


def test_editing_a_class_name_and_colour_writes_them_into_the_model_file(page, model, run, until):
    run(page.reload())
    table = page.details.class_table

    async def scenario():
        table.item(1, NAME_COLUMN).setText("road")
        await until(lambda: read_metadata(model).classes[1].name == "road", "the new name in the file")
        await page.set_class_color(1, "#123456")

    run(scenario())
    classes = read_metadata(model).classes
    assert (classes[1].name, classes[1].color) == ("road", "#123456")
    assert classes[0].name == "class 0", "other classes are unchanged"
    assert table.item(1, COLOR_COLUMN).background().color() == QColor("#123456")
    load_model(model)  # the rewritten file still loads with its weights
    legend = [label.text for _sample, label in page.details.loss_plot.metric_plot.legend.items]
    assert "road" in legend and "class 1" not in legend, "curves name the class as the model does now"
    assert "road" in page.details.training_label.text()


def test_a_class_name_taken_by_another_class_is_refused_and_the_file_kept(page, model, run, until):
    run(page.reload())
    table = page.details.class_table
    before = model.read_bytes()

    async def scenario():
        table.item(1, NAME_COLUMN).setText("class 0")
        await until(lambda: page.banner.text(), "the refusal message")

    run(scenario())
    assert "already named 'class 0'" in page.banner.text()
    assert table.item(1, NAME_COLUMN).text() == "class 1" and table.classes()[1].name == "class 1"
    assert model.read_bytes() == before
    with pytest.raises(ModelFileError, match="'class 0' would name more than one class"):
        same = [replace(info, name="class 0") for info in read_metadata(model).classes]
        update_metadata(model, classes=same)
    assert model.read_bytes() == before


def test_predict_rename_and_delete_act_on_the_selected_model(page, model, run, qtbot):
    run(page.reload())
    with qtbot.waitSignal(page.predict_requested) as request:
        page.predict_button.click()
    assert request.args == [model]

    checkpoints = model.with_suffix(".checkpoints")
    checkpoints.mkdir()
    (checkpoints / "last.ckpt").write_bytes(b"state")
    renamed = page.rename_model(model, "roads and fields")
    run(page.reload(select=renamed))
    assert renamed.name == "roads and fields.safetensors" and not model.exists()
    assert page.current_entry().path == renamed
    moved = renamed.with_suffix(".checkpoints")
    assert (moved / "last.ckpt").read_bytes() == b"state" and not checkpoints.exists(), "checkpoints follow"

    page.delete_model(renamed)
    run(page.reload())
    assert not renamed.exists() and page.entries() == []
    assert not moved.exists(), "a deleted model's checkpoints go with it"
    assert not page.rename_button.isEnabled()


def test_an_opened_model_from_elsewhere_and_a_damaged_file_are_both_listed(page, trained_model, home, run):
    damaged = home / "models" / "broken.safetensors"
    damaged.write_bytes(b"not a model at all")
    run(page.open_model(trained_model))
    assert {entry.path for entry in page.entries()} == {damaged, trained_model.resolve()}
    assert page.current_entry().path == trained_model.resolve()
    broken_row = next(row for row, entry in enumerate(page.entries()) if entry.path == damaged)
    page.table.setCurrentCell(broken_row, 0)
    assert "not a valid ModelAI model" in page.details.message.text()
    assert not page.predict_button.isEnabled()


def test_a_model_file_gone_while_the_folder_is_read_is_left_out(page, model, home, run):
    """A dangling link is what a file renamed or deleted between listing and reading looks like."""
    (home / "models" / "moved away.safetensors").symlink_to(home / "models" / "gone.safetensors")
    run(page.reload())
    assert [entry.path for entry in page.entries()] == [model]


def test_long_model_names_are_told_apart_and_the_colour_dialog_names_the_class(page, model, run):
    long_name = "segmentation-a-very-long-survey-area-name-summer-2026"
    for suffix in ("-2", "-3"):
        shutil.copy(model, model.with_name(f"{long_name}{suffix}.safetensors"))
    run(page.reload())
    assert page.table.textElideMode() == Qt.TextElideMode.ElideMiddle, "the differing ends stay visible"
    tooltips = {page.table.item(row, 0).toolTip().splitlines()[0] for row in range(page.table.rowCount())}
    assert {f"{long_name}-2.safetensors", f"{long_name}-3.safetensors"} <= tooltips
    assert color_dialog_title(ClassInfo(1, "class 1", "#000000")) == "Colour of class 1"
    assert color_dialog_title(ClassInfo(3, "water", "#000000")) == "Colour of class “water”"
