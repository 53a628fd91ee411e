"""Painted labels: tiles and undo, the autosaved mask GeoTIFF, freezing labels into a training job,
training on them (and again from the previous weights), and the live prediction with its uncertainty."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize
from rasterio.windows import Window

from engine.datasets import find_training_data
from engine.errors import DatasetError, ModelFileError, OutputError, RasterError
from engine.jobs.runner import open_store, run
from engine.jobs.specs import TrainSpec, validate
from engine.labels.live_prediction import entropy_uncertainty, margin_uncertainty, predict_window
from engine.labels.store import (
    LabelClass,
    labels_folder,
    load_classes,
    load_mask,
    save_classes,
    save_label_polygons,
    save_mask,
    write_atomically,
)
from engine.labels.tiles import HISTORY_STEPS, UNLABELLED, LabelTiles
from engine.labels.training_set import check_trainable, freeze_labels, label_training_config
from engine.labels.vector_file import read_label_features
from engine.progress import CancelToken, RecordingReporter
from engine.rasters.read import read_info
from engine.synthetic import write_scene
from engine.training import train
from engine.training.config import TrainConfig

CLASSES = [LabelClass("field", "#7fbf4d"), LabelClass("water", "#2a6fe8")]
FIELD, WATER = 0, 3  # ids in the synthetic truth


def test_brush_paints_a_disk_in_the_touched_tiles_only() -> None:
    tiles = LabelTiles(1000, 1200)
    tiles.begin_stroke()
    tiles.paint_disk(300.5, 300.5, 5.0, 2)
    assert tiles.end_stroke()
    window = tiles.read(290, 290, 21, 21)
    assert window[10, 10] == 2 and window[10, 15] == 2 and window[10, 16] == UNLABELLED
    assert tiles.tile_count == 1
    assert tiles.class_pixels() == {2: int((window == 2).sum())}


def test_a_line_crossing_tiles_leaves_no_gap_and_bounds_cover_it() -> None:
    tiles = LabelTiles(600, 600)
    tiles.begin_stroke()
    tiles.paint_line((10.0, 10.0), (10.0, 500.0), 2.0, 1)
    tiles.end_stroke()
    assert (tiles.read(10, 10, 1, 490) == 1).all()
    assert tiles.tile_count == 2
    row, col, height, width = tiles.labelled_bounds()
    assert row <= 8 and col <= 8 and row + height >= 12 and col + width >= 502


def test_polygon_fills_its_inside() -> None:
    tiles = LabelTiles(300, 300)
    tiles.begin_stroke()
    tiles.paint_polygon([(10.0, 10.0), (10.0, 110.0), (60.0, 110.0), (60.0, 10.0)], 4)
    tiles.end_stroke()
    values = tiles.read(0, 0, 300, 300)
    assert (values[12:58, 12:108] == 4).all()
    assert values[5, 5] == UNLABELLED and values[100, 100] == UNLABELLED


def test_undo_redo_and_eraser_keep_at_least_fifty_steps() -> None:
    tiles = LabelTiles(500, 500)
    for step in range(HISTORY_STEPS + 5):
        tiles.begin_stroke()
        tiles.paint_disk(float(step * 4 % 480 + 5), 20.0, 2.0, step % 3)
        tiles.end_stroke()
    painted = tiles.read(0, 0, 500, 500)
    for _ in range(50):
        assert tiles.undo()
    assert not np.array_equal(tiles.read(0, 0, 500, 500), painted)
    for _ in range(50):
        assert tiles.redo()
    assert np.array_equal(tiles.read(0, 0, 500, 500), painted)
    tiles.begin_stroke()
    tiles.paint_disk(300.0, 300.0, 4.0, 1)
    tiles.end_stroke()
    tiles.begin_stroke()
    tiles.paint_disk(300.0, 300.0, 10.0, UNLABELLED)
    tiles.end_stroke()
    assert tiles.read(300, 300, 1, 1)[0, 0] == UNLABELLED
    assert tiles.undo() and tiles.read(300, 300, 1, 1)[0, 0] == 1
    assert not tiles.can_redo() or tiles.redo()


def test_erasing_everything_drops_the_tile() -> None:
    tiles = LabelTiles(300, 300)
    tiles.paint_disk(50.0, 50.0, 3.0, 1)
    tiles.paint_disk(50.0, 50.0, 6.0, UNLABELLED)
    assert tiles.tile_count == 0


def test_read_with_a_step_matches_strided_full_read() -> None:
    tiles = LabelTiles(700, 900)
    rng = np.random.default_rng(1)
    for _ in range(30):
        tiles.paint_disk(
            rng.uniform(0, 700), rng.uniform(0, 900), rng.uniform(1, 30), int(rng.integers(0, 4))
        )
    full = tiles.read(0, 0, 700, 900)
    assert np.array_equal(tiles.read(13, 27, 600, 800, step=7), full[13:613:7, 27:827:7])


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    result = write_scene(tmp_path / "scene", "scene", size=(192, 192), seed=3)
    with rasterio.open(result.mask) as dataset:
        truth = dataset.read(1)
    return result.image, truth


def scribble(truth: np.ndarray, dabs: int = 40, seed: int = 0) -> LabelTiles:
    """Sparse strokes a person would paint: small dabs of field and water where the truth says so."""
    rng = np.random.default_rng(seed)
    tiles = LabelTiles(*truth.shape)
    for label, true_id in enumerate((FIELD, WATER)):
        rows, cols = np.nonzero(truth == true_id)
        for index in rng.choice(len(rows), size=min(dabs, len(rows)), replace=False):
            tiles.begin_stroke()
            tiles.paint_disk(rows[index] + 0.5, cols[index] + 0.5, 1.5, label)
            tiles.end_stroke()
    values = tiles.read(0, 0, *truth.shape)
    wrong = (values == 0) & (truth != FIELD) | (values == 1) & (truth != WATER)
    for row, col in zip(*np.nonzero(wrong), strict=True):
        tiles.paint_disk(row + 0.5, col + 0.5, 0.5, UNLABELLED)
    return tiles


def test_autosaved_mask_is_on_the_raster_grid_and_trains_from_the_command_line(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    image, truth = scene
    info, tiles = read_info(image), scribble(truth)
    folder = labels_folder(tmp_path / "home", image)
    mask = folder / "labels.tif"
    save_mask(mask, info, tiles.copy(), CLASSES)
    save_classes(folder / "labels.json", image, CLASSES)
    with rasterio.open(mask) as dataset, rasterio.open(image) as source:
        assert dataset.crs == source.crs and dataset.transform == source.transform
        assert (dataset.width, dataset.height, dataset.count, dataset.dtypes[0]) == (192, 192, 1, "uint8")
        assert dataset.nodata == UNLABELLED and dataset.compression is not None
        assert np.array_equal(dataset.read(1), tiles.read(0, 0, 192, 192))
        assert dataset.colormap(1)[1][:3] == (0x2A, 0x6F, 0xE8)
    assert sorted(path.name for path in folder.iterdir()) == ["labels.json", "labels.tif"]
    pairs = find_training_data([image], [mask], RecordingReporter())
    assert pairs[0].mask.class_pixels.keys() == {0, 1}
    again = load_mask(mask, info)
    assert np.array_equal(again.read(0, 0, 192, 192), tiles.read(0, 0, 192, 192))
    assert load_classes(folder / "labels.json") == CLASSES


def test_a_mask_of_another_grid_is_refused(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    image, _ = scene
    other = write_scene(tmp_path / "other", "other", size=(64, 64)).mask
    with pytest.raises(RasterError, match="not a label mask"):
        load_mask(other, read_info(image))


def test_labels_exported_as_polygons_burn_back_to_the_same_pixels_and_train_with_labels(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    image, truth = scene
    info, tiles = read_info(image), scribble(truth)
    target = tmp_path / "labels.gpkg"
    assert save_label_polygons(target, info, tiles.copy(), CLASSES) > 0
    features = read_label_features(target, field="class_name")
    assert set(features.values.tolist()) == {label.name for label in CLASSES}
    ids = {label.name: class_id for class_id, label in enumerate(CLASSES)}
    burnt = rasterize(
        ((geometry, ids[name]) for geometry, name in zip(features.geometries, features.values, strict=True)),
        out_shape=(info.height, info.width), transform=info.transform, fill=UNLABELLED, dtype="uint8",
    )  # fmt: skip
    assert np.array_equal(burnt, tiles.read(0, 0, info.height, info.width))


def test_a_failed_save_keeps_the_previous_labels(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    image, truth = scene
    mask = tmp_path / "labels" / "labels.tif"
    save_mask(mask, read_info(image), scribble(truth).copy(), CLASSES)
    before = mask.read_bytes()

    def write_half_then_fail(temporary: Path) -> None:
        temporary.write_bytes(before[:100])
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputError, match=r"Cannot save the labels.*No space left"):
        write_atomically(mask, write_half_then_fail)
    assert mask.read_bytes() == before
    assert [path.name for path in mask.parent.iterdir()] == ["labels.tif"]
    with pytest.raises(OutputError, match="Cannot save the labels"):
        save_mask(mask / "inside-a-file.tif", read_info(image), LabelTiles(192, 192), CLASSES)


def test_one_class_is_refused_with_what_to_paint() -> None:
    with pytest.raises(DatasetError, match=r"Only 'water' is labelled.*'field'"):
        check_trainable({1: 300}, CLASSES)
    with pytest.raises(DatasetError, match="Nothing is labelled"):
        check_trainable({}, CLASSES)
    check_trainable({0: 5, 1: 7}, CLASSES)


def test_frozen_folds_hold_every_label_once(scene: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    image, truth = scene
    tiles = scribble(truth)
    frozen = freeze_labels(tmp_path / "job", read_info(image), tiles)
    window = frozen.window
    expected = tiles.read(int(window.row_off), int(window.col_off), int(window.height), int(window.width))
    stacked = []
    for mask in frozen.masks:
        with rasterio.open(mask) as dataset:
            stacked.append(dataset.read(1))
    labelled = np.stack(stacked) != UNLABELLED
    assert (labelled.sum(axis=0) == (expected != UNLABELLED)).all()
    for values in stacked:
        assert set(np.unique(values)) >= {0, 1}
    with rasterio.open(frozen.images[0]) as crop, rasterio.open(image) as source:
        assert crop.transform.c == source.transform.c + window.col_off * source.transform.a
        assert np.array_equal(crop.read(), source.read(window=window))


def test_train_on_labels_learns_then_trains_again_from_its_weights(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    image, truth = scene
    info, tiles, home = read_info(image), scribble(truth), tmp_path / "home"
    frozen = freeze_labels(tmp_path / "job1", info, tiles)
    first = label_training_config(frozen, tmp_path / "m1.safetensors", CLASSES, epochs=4)
    with open_store(home) as store:
        outcome = run(store, TrainSpec(first), RecordingReporter(), CancelToken())
    assert outcome.training is not None and outcome.training.model_path.is_file()
    prediction = predict_window(outcome.training.model_path, info, Window(0, 0, 192, 192), measure="margin")
    known = (truth == FIELD) | (truth == WATER)
    expected = np.where(truth == WATER, 1, 0)
    accuracy = float((prediction.classes[known] == expected[known]).mean())
    assert accuracy > 0.85, accuracy
    assert prediction.uncertainty.dtype == np.float32
    assert prediction.uncertainty.min() >= 0.0 and prediction.uncertainty.max() <= 1.0
    assert (
        prediction.uncertainty[known].mean() < prediction.uncertainty[~known & (truth != UNLABELLED)].mean()
    )

    live = predict_window(outcome.training.checkpoint_path, info, Window(32, 32, 100, 80), measure="entropy")
    assert live.classes.shape == (80, 100)

    reporter = RecordingReporter()
    frozen2 = freeze_labels(tmp_path / "job2", info, scribble(truth, dabs=60, seed=1))
    second = label_training_config(
        frozen2, tmp_path / "m2.safetensors", CLASSES, epochs=1, init_model=outcome.training.model_path
    )
    with open_store(home) as store:
        again = run(store, TrainSpec(second), reporter, CancelToken())
    assert any("Starting from the weights of m1.safetensors" in text for _, text in reporter.messages)
    repeat = predict_window(again.training.model_path, info, Window(0, 0, 192, 192))
    assert float((repeat.classes[known] == expected[known]).mean()) > 0.8


def test_uncertainty_measures() -> None:
    sure = np.array([[[0.98]], [[0.01]], [[0.01]]], dtype=np.float32)
    torn = np.array([[[0.5]], [[0.5]], [[0.0]]], dtype=np.float32)
    assert margin_uncertainty(sure)[0, 0] < 0.1 and margin_uncertainty(torn)[0, 0] == pytest.approx(1.0)
    flat = np.full((3, 1, 1), 1 / 3, dtype=np.float32)
    assert entropy_uncertainty(flat)[0, 0] == pytest.approx(1.0, abs=1e-4)
    assert entropy_uncertainty(sure)[0, 0] < 0.2


def test_a_missing_or_unfit_model_to_start_from_is_refused(
    scene: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    image, truth = scene
    frozen = freeze_labels(tmp_path / "job", read_info(image), scribble(truth))
    missing = label_training_config(
        frozen, tmp_path / "m.safetensors", CLASSES, init_model=tmp_path / "none.safetensors"
    )
    with pytest.raises(ModelFileError, match="to start from does not exist"):
        validate(TrainSpec(missing))
    anomaly = train(
        TrainConfig(
            task="anomaly",
            images=[image],
            output=tmp_path / "ae.safetensors",
            patch=32,
            epochs=1,
            batch_size=4,
            base_width=4,
            patches_per_epoch=4,
            device="cpu",
        )
    )
    unfit = label_training_config(
        frozen, tmp_path / "m.safetensors", CLASSES, epochs=1, init_model=anomaly.model_path
    )
    with pytest.raises(ModelFileError, match="cannot start a segmentation training"):
        train(unfit)
