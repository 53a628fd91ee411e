"""Real training runs on small synthetic scenes: learning, checkpoints, resume, cancel, outputs."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.windows import Window

from engine.errors import DatasetError, JobCancelled, ModelFileError, OutputError
from engine.models import build_model
from engine.models.file import load_checkpoint, load_model
from engine.progress import CancelToken, EpochEvent, ProgressEvent, RecordingReporter
from engine.rasters.normalize import Normalization
from engine.rasters.read import open_raster, read_block, read_info
from engine.synthetic import CLASS_NAMES, Scene
from engine.training import TrainConfig, checkpoint_path_for, train
from engine.training.metrics import segmentation_scores
from engine.training.schedule import WarmupCosine
from tests.rasters import write_raster, write_training_set

FAST = {"patch": 64, "batch_size": 8, "base_width": 8, "depth": 3, "lr": 1e-2, "patches_per_epoch": 64}


def segmentation_config(scene_dir: Path, output: Path, **changes: object) -> TrainConfig:
    config = TrainConfig(
        task="segmentation",
        images=[scene_dir / "train" / "images"],
        masks=[scene_dir / "train" / "masks"],
        output=output,
        epochs=8,
        class_names=list(CLASS_NAMES),
        **FAST,
    )
    return replace(config, **changes)


def predict_whole(model: torch.nn.Module, normalization: dict, bands: list[int], path: Path) -> tuple:
    """A plain forward pass over a whole raster, padded to the network's size multiple."""
    info = read_info(path)
    with open_raster(path) as dataset:
        block = read_block(dataset, Window(0, 0, info.width, info.height), bands, info)
    image = Normalization.from_dict(normalization).apply(block.data, block.valid)
    multiple = model.size_multiple
    pad_rows, pad_cols = -info.height % multiple, -info.width % multiple
    image = np.pad(image, ((0, 0), (0, pad_rows), (0, pad_cols)), mode="reflect")
    with torch.no_grad():
        output = model(torch.from_numpy(np.ascontiguousarray(image))[None])[0]
    return (
        output[:, : info.height, : info.width],
        torch.from_numpy(image[:, : info.height, : info.width]),
        block.valid,
    )


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve from ranks (Mann-Whitney U)."""
    ranks = np.empty(scores.size)
    ranks[np.argsort(scores, kind="stable")] = np.arange(1, scores.size + 1)
    positives, negatives = int(positive.sum()), int((~positive).sum())
    return float((ranks[positive].sum() - positives * (positives + 1) / 2) / (positives * negatives))


class CancellingReporter(RecordingReporter):
    """Sets the token when ``when`` says so, as a user pressing Cancel at that moment would."""

    def __init__(self, cancel: CancelToken, when: Callable[[ProgressEvent | EpochEvent], bool]) -> None:
        super().__init__()
        self.cancel = cancel
        self.when = when

    def on_progress(self, event: ProgressEvent) -> None:
        super().on_progress(event)
        if self.when(event):
            self.cancel.cancel()

    def on_epoch(self, event: EpochEvent) -> None:
        super().on_epoch(event)
        if self.when(event):
            self.cancel.cancel()


def test_unet_learns_to_segment_a_held_out_scene(scene_dir: Path, tmp_path: Path) -> None:
    reporter = RecordingReporter()
    output = tmp_path / "new" / "folder" / "unet.safetensors"
    result = train(segmentation_config(scene_dir, output), reporter)

    model, metadata = load_model(result.model_path)
    logits, _, _ = predict_whole(
        model, metadata.normalization, metadata.bands, scene_dir / "holdout" / "images" / "holdout.tif"
    )
    with rasterio.open(scene_dir / "holdout" / "masks" / "holdout.tif") as dataset:
        reference = torch.from_numpy(dataset.read(1).astype(np.int64))
    labelled = reference != 255
    matrix = np.zeros((4, 4), dtype=np.int64)
    np.add.at(matrix, (reference[labelled].numpy(), logits.argmax(dim=0)[labelled].numpy()), 1)
    scores = segmentation_scores(matrix)
    assert scores.absent == []
    assert scores.mean_iou >= 0.8, scores.iou

    assert result.epochs_run == 8 and not result.stopped_early
    assert [entry["epoch"] for entry in result.history] == list(range(1, 9))
    best_epoch = max(result.history, key=lambda entry: entry["metrics"]["mean_iou"])["epoch"]
    assert metadata.training["best_epoch"] == best_epoch == metadata.training["kept"]["epoch"]
    assert result.best_metric == metadata.training["kept"]["metrics"]["mean_iou"]
    assert [c.name for c in metadata.classes] == list(CLASS_NAMES)
    assert metadata.bands == [1, 2, 3, 4, 5] and metadata.input_dtype == "uint16"
    assert metadata.patch_size == 64 and metadata.crs == "EPSG:32618" and metadata.pixel_size == [10.0, 10.0]
    assert metadata.anomaly is None
    training = metadata.training
    assert training["monitor"] == "mean_iou" and training["best_metric"] == result.best_metric
    assert len(training["data"]) == 3 and all(entry["size_bytes"] > 0 for entry in training["data"])
    assert training["library_versions"]["torch"] == torch.__version__ and training["device"]["kind"] == "cpu"
    json.dumps(training, allow_nan=False)
    assert result.checkpoint_path == checkpoint_path_for(segmentation_config(scene_dir, output))
    assert load_checkpoint(result.checkpoint_path)["epoch"] == 8

    event = reporter.epochs[-1]
    assert set(event.metrics) >= {"mean_iou", "mean_f1", "iou/road", "f1/water"}
    assert event.sample["image"].shape == (64, 64, 3) and event.sample["image"].dtype == np.uint8
    assert event.sample["prediction"].shape == event.sample["target"].shape == (64, 64)
    stages = {(p.stage, p.epoch) for p in reporter.progress}
    assert ("train", 1) in stages and ("validate", 8) in stages
    assert reporter.messages[0][1].startswith("Device: ")


def test_autoencoder_separates_inserted_anomalies(
    scene_dir: Path, anomaly_scene: Scene, tmp_path: Path
) -> None:
    config = TrainConfig(
        task="anomaly",
        images=[scene_dir / "train" / "images"],
        output=tmp_path / "ae.safetensors",
        epochs=6,
        **{**FAST, "lr": 3e-3},
    )
    result = train(config, RecordingReporter())
    model, metadata = load_model(result.model_path)
    reconstruction, image, valid = predict_whole(
        model, metadata.normalization, metadata.bands, anomaly_scene.image
    )
    errors = (reconstruction - image).square().mean(dim=0).numpy()
    with rasterio.open(anomaly_scene.anomaly_mask) as dataset:
        foreign = dataset.read(1).astype(bool)
    assert auroc(errors[valid], foreign[valid]) >= 0.9

    anomaly = metadata.anomaly
    assert anomaly["quantile"] == 0.99
    assert anomaly["threshold"] == pytest.approx(anomaly["error_p99"])
    assert 0 < anomaly["error_p50"] < anomaly["threshold"] and anomaly["error_std"] > 0
    normal = errors[valid & ~foreign]
    assert (normal > anomaly["threshold"]).mean() < 0.05
    assert (errors[valid & foreign] > anomaly["threshold"]).mean() > 0.5
    assert result.history[-1]["calibration"]["pixels"] > 0
    assert anomaly == metadata.training["kept"]["calibration"]


def test_percentile_normalisation_of_an_anomaly_model_keeps_extreme_values(scene_dir: Path, tmp_path: Path):
    """Clipping to [-1, 1] would make a value ten times the training range look like a normal one."""
    config = TrainConfig(
        task="anomaly",
        images=[scene_dir / "train" / "images"],
        output=tmp_path / "ae.safetensors",
        epochs=1,
        normalization="percentile",
        **{**FAST, "patches_per_epoch": 8},
    )
    metadata = train(config, RecordingReporter()).metadata
    normalization = Normalization.from_dict(metadata.normalization)
    assert normalization.method == "percentile" and not normalization.clip
    high = np.array(normalization.offset) + 10 * np.array(normalization.scale)
    assert (normalization.apply(high.reshape(-1, 1, 1).astype(np.float32)) > 5).all()


def test_cancelled_run_resumes_where_it_stopped(scene_dir: Path, tmp_path: Path) -> None:
    # Without the per-pixel start, which solves this scene before the first step: a resume that
    # restarted from a fresh network must show in the losses.
    fast = {"epochs": 4, "patches_per_epoch": 32, "lr": 3e-3, "pixel_width": 0}
    straight = train(segmentation_config(scene_dir, tmp_path / "straight.safetensors", **fast))

    config = segmentation_config(scene_dir, tmp_path / "resumed.safetensors", **fast)
    cancel = CancelToken()
    reporter = CancellingReporter(cancel, lambda event: isinstance(event, EpochEvent) and event.epoch == 2)
    with pytest.raises(JobCancelled, match="resume"):
        train(config, reporter, cancel)
    assert not config.output.exists()
    checkpoint = load_checkpoint(checkpoint_path_for(config))
    assert checkpoint["epoch"] == 2 and len(checkpoint["history"]) == 2

    resume = replace(config, resume=checkpoint_path_for(config))
    for changed, option in [({"lr": 1e-2}, "--lr is 0.01 here but 0.003"), ({"epochs": 3}, "--epochs is 3")]:
        with pytest.raises(ModelFileError, match=f"other settings: {option}"):
            train(replace(resume, **changed))
    resumed_reporter = RecordingReporter()
    resumed = train(resume, resumed_reporter)
    assert resumed.epochs_run == 4
    assert [entry["epoch"] for entry in resumed.history] == [1, 2, 3, 4]
    assert [event.epoch for event in resumed_reporter.epochs] == [3, 4]
    first, before, after = (resumed.history[index]["train_loss"] for index in range(3))
    assert after < first and abs(after - before) < abs(first - before)
    straight_losses = [entry["train_loss"] for entry in straight.history]
    resumed_losses = [entry["train_loss"] for entry in resumed.history]
    np.testing.assert_allclose(resumed_losses, straight_losses, rtol=1e-4)
    assert resumed.metadata.training["epochs_run"] == 4
    # The best epochs from before the cancel were kept in best.ckpt, so the same ones are averaged.
    averaged = straight.metadata.training["kept"]["averaged_epochs"]
    assert resumed.metadata.training["kept"]["averaged_epochs"] == averaged and min(averaged) <= 2
    straight_weights, resumed_weights = (
        load_model(result.model_path)[0].state_dict() for result in (straight, resumed)
    )
    for name, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[name], value, rtol=1e-3, atol=1e-4)

    longer = train(replace(resume, epochs=6, overwrite=True))
    assert [entry["epoch"] for entry in longer.history] == [1, 2, 3, 4, 5, 6], "more epochs were asked for"
    assert longer.metadata.training["config"]["epochs"] == 6
    assert longer.history[4]["lr"] > resumed.history[3]["lr"], "the schedule was stretched, not run past"


def test_flips_and_turns_follow_the_per_pixel_start_unless_chosen(scene_dir: Path, tmp_path: Path) -> None:
    """Automatic: on where the bands alone find every class (this spectral scene), and a resumed run
    keeps the choice its checkpoint made; an explicit choice wins."""
    config = segmentation_config(scene_dir, tmp_path / "auto.safetensors", epochs=2, patches_per_epoch=16)
    cancel = CancelToken()
    reporter = CancellingReporter(cancel, lambda event: isinstance(event, EpochEvent) and event.epoch == 1)
    with pytest.raises(JobCancelled):
        train(config, reporter, cancel)
    said = [text for _, text in reporter.messages if text.startswith("Random flips and quarter turns")]
    assert said == [
        "Random flips and quarter turns: on (the bands alone find every class, so orientation tells "
        "nothing). To choose: --augment or --no-augment (Train page: Flips and turns)."
    ]
    assert load_checkpoint(checkpoint_path_for(config))["augment"] is True
    resumed = train(replace(config, resume=checkpoint_path_for(config)))
    assert resumed.epochs_run == 2 and resumed.metadata.training["augment"] is True
    chosen = train(replace(config, output=tmp_path / "off.safetensors", augment=False))
    assert chosen.metadata.training["augment"] is False


def test_cancel_during_an_epoch_leaves_a_loadable_checkpoint(scene_dir: Path, tmp_path: Path) -> None:
    config = segmentation_config(scene_dir, tmp_path / "cut.safetensors", epochs=3, patches_per_epoch=32)
    cancel = CancelToken()
    reporter = CancellingReporter(
        cancel, lambda event: isinstance(event, ProgressEvent) and (event.epoch, event.done) == (2, 2)
    )
    with pytest.raises(JobCancelled) as error:
        train(config, reporter, cancel)
    path = checkpoint_path_for(config)
    assert str(path) in str(error.value)
    state = load_checkpoint(path)
    assert state["epoch"] == 1 and [entry["epoch"] for entry in state["history"]] == [1]
    hyperparameters = {"in_channels": 5, "num_classes": 4, "base_width": 8, "depth": 3, "pixel_width": 32}
    build_model("unet", hyperparameters).load_state_dict(state["model"])
    assert [p.done for p in reporter.progress if p.epoch == 2 and p.stage == "train"] == [1, 2]


def test_existing_model_is_kept_unless_overwrite(scene_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "model.safetensors"
    output.write_bytes(b"an earlier model")
    config = segmentation_config(scene_dir, output, epochs=1, patches_per_epoch=8)
    with pytest.raises(OutputError, match="--overwrite"):
        train(config)
    assert output.read_bytes() == b"an earlier model"
    result = train(replace(config, overwrite=True))
    assert load_model(result.model_path)[1].training["epochs_run"] == 1


def write_two_class_scenes(folder: Path, uniform: bool) -> TrainConfig:
    """Two 64×64 scenes, left half class 0 and right half class 1 with very different values.

    With ``uniform`` the second scene's mask holds class 0 only. Returns a quick config for them.
    """
    rng = np.random.default_rng(0)
    halves = (np.arange(64)[None, :].repeat(64, axis=0) // 32).astype(np.uint8)
    scenes = {}
    for name, mask in (("mixed", halves), ("second", np.zeros_like(halves) if uniform else halves)):
        image = (halves[None].astype(np.uint16) * 1000 + rng.integers(100, 200, (3, 64, 64))).astype(
            np.uint16
        )
        scenes[name] = (image, mask)
    return write_training_set(folder, scenes, **{**FAST, "patch": 32, "depth": 2, "patches_per_epoch": 16})


def test_single_class_mask_warns_and_still_trains(tmp_path: Path) -> None:
    reporter = RecordingReporter()
    result = train(replace(write_two_class_scenes(tmp_path, uniform=True), epochs=1), reporter)
    assert any("second.tif" in text and "single class" in text for text in reporter.warnings())
    assert result.epochs_run == 1 and len(result.metadata.classes) == 2


def test_a_class_the_model_did_not_learn_is_named_in_a_warning(tmp_path: Path) -> None:
    """Class 1 is noise (5 % of pixels, nothing in the image marks it): no model can find it."""
    rng = np.random.default_rng(1)
    for name in ("first", "second"):
        image = rng.integers(100, 200, (3, 64, 64)).astype(np.uint16)
        write_raster(tmp_path / "images" / f"{name}.tif", image)
        write_raster(tmp_path / "masks" / f"{name}.tif", (rng.random((1, 64, 64)) < 0.05).astype(np.uint8))
    config = replace(write_two_class_scenes(tmp_path / "unused", uniform=False), epochs=2)
    config = replace(config, images=[tmp_path / "images"], masks=[tmp_path / "masks"])
    reporter = RecordingReporter()
    train(config, reporter)
    (warning,) = [text for text in reporter.warnings() if "barely learned" in text]
    assert "'class 1'" in warning


def test_patience_stops_a_run_that_no_longer_improves(tmp_path: Path) -> None:
    config = replace(write_two_class_scenes(tmp_path, uniform=False), epochs=12, patience=2)
    reporter = RecordingReporter()
    result = train(config, reporter)
    assert not [text for text in reporter.warnings() if "barely learned" in text]
    assert result.stopped_early and result.epochs_run < 12
    assert result.best_metric == max(entry["metrics"]["mean_iou"] for entry in result.history)
    assert result.epochs_run - result.metadata.training["best_epoch"] == 2


def test_trains_on_a_real_labelled_raster(shared_data: Callable[[str], Path], tmp_path: Path) -> None:
    image = shared_data("deepforest/OSBS_029.tif")
    info = read_info(image)
    mask = np.zeros((info.height, info.width), dtype=np.uint8)
    with shared_data("deepforest/OSBS_029.csv").open() as boxes:
        for box in csv.DictReader(boxes):
            xmin, ymin, xmax, ymax = (int(float(box[key])) for key in ("xmin", "ymin", "xmax", "ymax"))
            mask[ymin:ymax, xmin:xmax] = 1
    with rasterio.open(image) as source:
        profile = {**source.profile, "count": 1, "dtype": "uint8", "nodata": None}
    mask_path = tmp_path / "OSBS_029_mask.tif"
    with rasterio.open(mask_path, "w", **profile) as target:
        target.write(mask[None])
    config = TrainConfig(
        task="segmentation",
        images=[image],
        masks=[mask_path],
        output=tmp_path / "trees.safetensors",
        epochs=2,
        class_names=["background", "tree"],
        **{**FAST, "patches_per_epoch": 32},
    )
    result = train(config, RecordingReporter())
    metadata = load_model(result.model_path)[1]
    assert metadata.crs == "EPSG:32617" and metadata.bands == [1, 2, 3]
    assert "bottom" in metadata.training["validation"]
    assert 0 < result.best_metric <= 1


def test_the_network_width_follows_the_task_unless_given(tmp_path: Path) -> None:
    config = TrainConfig(task="segmentation", images=[tmp_path], masks=[tmp_path], output=tmp_path / "m")
    assert config.network_width == 16
    assert replace(config, task="anomaly", masks=None).network_width == 32
    assert replace(config, base_width=24).network_width == 24


def test_config_round_trips_through_json(tmp_path: Path) -> None:
    config = TrainConfig(
        task="segmentation",
        images=[tmp_path / "a.tif", tmp_path / "folder"],
        masks=[tmp_path / "masks"],
        output=tmp_path / "m.safetensors",
        bands=[3, 1],
        resume=tmp_path / "last.ckpt",
        class_names=["x", "y"],
    )
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(DatasetError, match="Unknown training setting"):
        TrainConfig.from_dict({**config.to_dict(), "colour": "red"})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"patch": 100}, "multiple of 16"),
        ({"val_fraction": 1.0}, "--val-fraction"),
        ({"masks": None}, "needs masks"),
        ({"threshold_quantile": 1.5}, "--threshold-quantile"),
        ({"class_names": ["soil", "road", "soil"]}, "--class-names gives 'soil' to more than one class"),
        ({"mask_values": "maybe"}, "--mask-values must be one of auto, binary, classes"),
    ],
)
def test_invalid_settings_fail_before_any_file_is_read(tmp_path: Path, changes: dict, problem: str) -> None:
    config = TrainConfig(
        task="segmentation", images=[tmp_path / "missing"], masks=[tmp_path], output=tmp_path / "m"
    )
    with pytest.raises(DatasetError, match=problem):
        train(replace(config, **changes))


def test_absent_class_is_left_out_and_a_wrongly_predicted_class_scores_zero() -> None:
    matrix = np.array([[5, 1, 0], [0, 4, 0], [0, 0, 0]])
    scores = segmentation_scores(matrix)
    assert scores.absent == [2] and scores.iou == pytest.approx({0: 5 / 6, 1: 4 / 5})
    assert scores.mean_iou == pytest.approx((5 / 6 + 4 / 5) / 2)
    predicted_only = segmentation_scores(np.array([[5, 2], [0, 0]]))
    assert predicted_only.iou[1] == 0.0 and predicted_only.absent == []


def test_cosine_schedule_warms_up_then_decays() -> None:
    factor = WarmupCosine(total_steps=100, warmup_steps=10)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(10) == pytest.approx(1.0) and factor(55) == pytest.approx(0.505)
    assert factor(100) == pytest.approx(0.01)
