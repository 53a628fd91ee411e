"""Training a model from rasters: check the data, fit, and write a self-describing model file.

`train` is what the command line and the job runner call. It validates everything it can before the
first batch (settings, output file, device, every raster and mask), so mistakes fail in seconds, then
runs the shared `fit` loop with the task's plug-ins and saves the weights it keeps (the best epochs'
average) with the metadata that inference needs (bands, normalisation, classes, threshold, training summary).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from engine.datasets import (
    DataSplit,
    ImagePair,
    describe_files,
    describe_mask_values,
    find_training_data,
    select_bands,
)
from engine.device import describe_device, resolve_device
from engine.errors import DatasetError, ModelFileError, OutputError
from engine.labels.training import with_label_masks
from engine.models import build_model
from engine.models.file import library_versions, load_checkpoint, save_model
from engine.models.metadata import ModelMetadata
from engine.patches import GridPatches, PatchReader, RandomPatches, default_patches_per_epoch, make_loader
from engine.profiles.profile import describe_rasters
from engine.progress import CancelToken, NullReporter, Reporter
from engine.rasters.normalize import Normalization, compute_statistics, describe_constant_bands
from engine.training.anomaly import make_anomaly_task
from engine.training.batch_norm import refresh_patch_count
from engine.training.budget import pass_cap_steps
from engine.training.config import TrainConfig, checkpoint_path_for, resume_differences, settings_hash
from engine.training.contract import FitInputs, TrainingTask
from engine.training.fit import CHECKPOINT_FORMAT, fit
from engine.training.holdout import scarce_classes, split_validation
from engine.training.pixel_start import PixelFit, fit_pixel_path, silence_pixel_path
from engine.training.sampling import ClassFocus, class_census
from engine.training.segmentation import SegmentationTask, make_segmentation_task, poorly_learned_warning
from engine.training.warm_start import warm_start

__all__ = [
    "TrainConfig",
    "TrainResult",
    "check_resumable",
    "checkpoint_config",
    "checkpoint_owner",
    "checkpoint_path_for",
    "train",
]


@dataclass(frozen=True)
class TrainResult:
    """The written model and how the run went."""

    model_path: Path
    metadata: ModelMetadata
    history: list[dict[str, Any]]
    checkpoint_path: Path
    best_metric: float | None
    epochs_run: int
    stopped_early: bool


def train(
    config: TrainConfig,
    reporter: Reporter | None = None,
    cancel: CancelToken | None = None,
    job_id: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TrainResult:
    """Trains a segmentation U-Net or an anomaly autoencoder and writes the model file.

    Every checkpoint records ``job_id`` (the job store's id of this run) and the settings' hash, so
    a checkpoint is only ever continued by its own job with its own settings (:func:`checkpoint_owner`).
    ``clock`` measures a time budget (``config.time_budget_s``); tests pass a fake one.

    Raises:
        DatasetError: invalid settings, or images and masks that do not form a training set.
        RasterError: a raster cannot be found, opened or read.
        BandMismatchError: ``bands`` names a band some image lacks.
        DeviceError: the device is not available or runs out of memory.
        OutputError: the model file exists (without ``overwrite``) or cannot be written.
        ModelFileError: the checkpoint to resume from is damaged, from another kind of run, or
            from a run with other settings than ``config`` (more epochs excepted).
        JobCancelled: the token was set; ``checkpoint_path_for(config)`` holds the last epoch.
    """
    started_at = clock()
    reporter = reporter or NullReporter()
    cancel = cancel or CancelToken()
    config.validate()
    resume = None
    if config.resume is not None:
        state = load_checkpoint(config.resume)
        check_resumable(config, state)
        resume = (state, config.resume)
    _prepare_output(config)
    device = resolve_device(config.device)
    config = with_label_masks(config, reporter)
    pairs = find_training_data(
        config.images,
        config.masks if config.task == "segmentation" else None,
        reporter,
        config.mask_values,
        config.nodata,
    )
    bands = select_bands(pairs, config.bands)
    split = split_validation(pairs, config.val_fraction, config.patch, config.seed, config.val_side)
    if resume is not None:
        _check_same_data(pairs, bands, resume[0], config.resume)
    task = _make_task(config, pairs, len(bands))
    device_info = describe_device(device)
    reporter.on_message("info", f"Device: {device_info.reason}")
    torch.manual_seed(config.seed)
    model = build_model(task.architecture, task.hyperparameters)
    if resume is None:
        started = None
        if config.init_model is not None:
            silence_pixel_path(model)
            started = warm_start(model, config.init_model, config.task, bands, reporter)
        normalization = started or _normalization(config, split, bands, reporter)
    else:
        normalization = Normalization.from_dict(resume[0]["normalization"])
        reporter.on_message(
            "info", f"Resuming {config.resume} after epoch {resume[0]['epoch']} of {config.epochs}."
        )
    reader = PatchReader(bands, normalization, config.patch)
    patches_per_epoch = config.patches_per_epoch or default_patches_per_epoch(
        split.train, config.patch, config.batch_size
    )
    focus = None
    if isinstance(task, SegmentationTask):
        census = class_census(reader, split.train, len(task.classes))
        focus = ClassFocus(census, split.train, config.patch, config.class_balance)
        task.class_weights = census.loss_weights() if config.class_weights else None
    train_patches = RandomPatches(reader, split.train, patches_per_epoch, config.seed, False, focus)
    pixel_fit = None
    if resume is None and config.init_model is None and isinstance(task, SegmentationTask):
        pixel_fit = fit_pixel_path(
            model, train_patches, device, task.class_weights, config.seed, [c.name for c in task.classes]
        )
        if pixel_fit is not None:
            reporter.on_message("info", pixel_fit.note)
    train_patches.augment = _augment(config, pixel_fit, resume[0] if resume else None, reporter)
    validation = GridPatches(reader, split.validation)
    # Uniform, unturned patches of the training part, as a prediction sees the scene; epoch 0 is
    # never a training epoch's draw.
    refresh_count = refresh_patch_count(config.patch)
    refresh_patches = RandomPatches(reader, split.train, refresh_count, config.seed, False)
    reporter.on_message(
        "info",
        f"Training on {len(pairs)} image(s), {split.description}; bands {', '.join(map(str, bands))}; "
        f"{patches_per_epoch} patches of {config.patch}×{config.patch} per epoch, "
        f"{len(validation)} validation windows."
        + (f" Masks read as {mask_reading}." if (mask_reading := describe_mask_values(pairs)) else ""),
    )
    if isinstance(task, SegmentationTask) and (scarce := scarce_classes(split)):
        names = {info.id: info.name for info in task.classes}
        named = ", ".join(repr(names.get(class_id, str(class_id))) for class_id in scarce)
        reporter.on_message(
            "warning",
            f"The validation part ({split.description}) holds little or none of {named} (under a "
            "quarter of its share of the data), so the best epoch is chosen on few of its pixels. "
            "Hold out another side (--val-side; on the Train page, Validation side), add an image that holds "
            "it, or label more of it.",
        )
    pin = device.type == "cuda"
    # Unturned patches over-fit a small area after some passes (budget.MAX_PASSES_UNTURNED).
    unturned = isinstance(task, SegmentationTask) and not train_patches.augment
    area = sum(region.area for region in split.train)
    run = FitInputs(
        model=model,
        task=task,
        train_patches=train_patches,
        train_loader=make_loader(train_patches, config.batch_size, config.num_workers, pin),
        val_loader=make_loader(validation, config.batch_size, config.num_workers, pin),
        refresh_loader=make_loader(refresh_patches, config.batch_size, config.num_workers, pin),
        budget_max_steps=pass_cap_steps(area, config.patch, config.batch_size) if unturned else None,
        device=device,
        config=config,
        clock=clock,
        started_at=started_at,
        checkpoint_extra={
            "task": config.task,
            "bands": bands,
            "normalization": normalization.to_dict(),
            "data": _data_names(pairs),
            "job_id": job_id,
            "settings_hash": settings_hash(config),
            "augment": train_patches.augment,
        },
    )
    try:
        result = fit(run, reporter, cancel, resume)
    finally:
        reader.close()
    model.load_state_dict(result.best_model)
    best_entry = result.kept or next(
        (entry for entry in result.history if entry["epoch"] == result.best_epoch), None
    )
    if isinstance(task, SegmentationTask) and (warning := poorly_learned_warning(best_entry)):
        reporter.on_message("warning", warning)
    summary = {
        "epochs": result.planned_epochs,
        "time_budget_s": config.time_budget_s,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "best_metric": result.best_metric,
        "monitor": task.monitor,
        "history": result.history,
        "kept": result.kept,
        "duration_s": sum(entry["duration_s"] for entry in result.history)
        + (result.kept["duration_s"] if result.kept else 0.0),
        "data": describe_files(pairs),
        "validation": split.description,
        "mask_values": describe_mask_values(pairs),
        "patches_per_epoch": patches_per_epoch,
        "augment": train_patches.augment,
        "seed": config.seed,
        "config": config.to_dict(),
        "library_versions": library_versions(),
        "device": {"kind": device_info.kind, "name": device_info.name, "description": device_info.reason},
    }
    metadata = _metadata(config, task, pairs, bands, normalization, best_entry, summary)
    save_model(config.output, model.cpu(), metadata)
    return TrainResult(
        model_path=config.output,
        metadata=metadata,
        history=result.history,
        checkpoint_path=checkpoint_path_for(config),
        best_metric=result.best_metric,
        epochs_run=result.epochs_run,
        stopped_early=result.stopped_early,
    )


def checkpoint_config(path: Path) -> TrainConfig:
    """The settings a training checkpoint was written with (to resume it with the same ones).

    Raises:
        ModelFileError: the file is missing, damaged or not a training checkpoint.
    """
    return TrainConfig.from_dict(_training_state(path, load_checkpoint(path))["config"])


def check_resumable(config: TrainConfig, state: dict[str, Any] | None = None) -> None:
    """A checkpoint continues only with its own settings: a difference is refused, never replaced.

    Args:
        state: the loaded ``config.resume``, when the caller has it already.

    Raises:
        ModelFileError: the checkpoint is not a training checkpoint, or holds another task or other
            settings than ``config`` (growing the epochs is allowed).
    """
    if config.resume is None:
        return
    state = _training_state(config.resume, state if state is not None else load_checkpoint(config.resume))
    stored = TrainConfig.from_dict(state["config"])
    if stored.task != config.task:
        raise ModelFileError(
            f"{config.resume} is a checkpoint of {stored.task} training, not {config.task}. "
            f"Resume it with 'modelai train {stored.task}'."
        )
    differences = resume_differences(config, stored)
    if differences:
        raise ModelFileError(
            f"{config.resume} was trained with other settings: {'; '.join(differences)}. Resume with the"
            " checkpoint's settings (leave those options out; only --epochs may grow), or train anew."
        )


def _training_state(path: Path, state: dict[str, Any]) -> dict[str, Any]:
    if state.get("format") != CHECKPOINT_FORMAT or "config" not in state:
        raise ModelFileError(f"{path} is not a ModelAI training checkpoint (last.ckpt). Check the path.")
    return state


def checkpoint_owner(path: Path) -> tuple[int | None, str | None]:
    """The job id and settings hash a training checkpoint records (None where it records none).

    Raises:
        ModelFileError: the file is missing, damaged or not a training checkpoint.
    """
    state = _training_state(path, load_checkpoint(path))
    return state.get("job_id"), state.get("settings_hash")


def _prepare_output(config: TrainConfig) -> None:
    if config.output.exists() and not config.overwrite:
        raise OutputError(f"{config.output} already exists. Choose another name or pass --overwrite.")
    if config.output.is_dir():
        raise OutputError(f"{config.output} is a folder; give a model file name such as model.safetensors.")
    try:
        config.output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(
            f"Cannot create the folder {config.output.parent}: {exc.strerror}. Choose a writable folder."
        ) from exc


def _normalization(
    config: TrainConfig, split: DataSplit, bands: list[int], reporter: Reporter
) -> Normalization:
    """Statistics of the training images only, so validation stays unseen.

    An autoencoder's percentile normalisation is not clipped: clipping to the training range would
    make an extreme value look like the brightest normal one, hiding the anomalies it exists to find.
    """
    images = list({region.pair.image.path: region.pair.image for region in split.train}.values())
    statistics = compute_statistics(images, bands, seed=config.seed)
    normalization = Normalization.from_statistics(statistics, config.normalization)
    if config.task == "anomaly" and normalization.clip:
        normalization = replace(normalization, clip=False)
        reporter.on_message(
            "info",
            "Percentile normalisation without clipping, so values beyond the training range stay "
            "visible to the autoencoder as anomalies.",
        )
    warning = describe_constant_bands(normalization, bands, [info.path for info in images])
    if warning:
        reporter.on_message("warning", warning)
    return normalization


def _augment(
    config: TrainConfig, pixel_fit: PixelFit | None, checkpoint: dict[str, Any] | None, reporter: Reporter
) -> bool:
    """Whether training patches are flipped and turned at random; ``config.augment`` None decides here.

    Automatically on where the network starts from its per-pixel path: the bands alone find every
    class, so which way a patch faces tells nothing, and turned patches keep many passes over one
    small scene from overfitting it (Landsat clouds, 2 minutes on a fast CPU: 0.731 without, 0.781
    with; docs/training_recipe.md). Off elsewhere: where a class is a shape, its shadow falls one way
    in a scene, and turned patches cost quality. A resumed run keeps the choice its checkpoint made.
    """
    if config.augment is not None:
        return config.augment
    if checkpoint is not None:
        return bool(checkpoint.get("augment", False))
    if pixel_fit is None:
        return False
    reason = (
        "the bands alone find every class, so orientation tells nothing"
        if pixel_fit.started
        else "the bands alone do not find every class, so shapes count, and one scene's shadows fall one way"
    )
    state = "on" if pixel_fit.started else "off"
    reporter.on_message(
        "info",
        f"Random flips and quarter turns: {state} ({reason}). To choose: --augment or --no-augment "
        "(Train page: Flips and turns).",
    )
    return pixel_fit.started


def _data_names(pairs: list[ImagePair]) -> list[str]:
    return sorted(pair.image.path.name for pair in pairs)


def _check_same_data(
    pairs: list[ImagePair], bands: list[int], state: dict[str, Any], source: Path | None
) -> None:
    """A resumed run must see the images and bands it started with, or its statistics are wrong."""
    if _data_names(pairs) != list(state["data"]) or bands != list(state["bands"]):
        raise DatasetError(
            f"The checkpoint {source} was trained on bands {state['bands']} of {', '.join(state['data'])}, "
            f"but bands {bands} of {', '.join(_data_names(pairs))} are given now. "
            "Resume with the same images and bands, or train anew."
        )


def _make_task(config: TrainConfig, pairs: list[ImagePair], in_channels: int) -> TrainingTask:
    if config.task == "segmentation":
        return make_segmentation_task(config, pairs, in_channels)
    return make_anomaly_task(config, in_channels)


def _metadata(
    config: TrainConfig,
    task: TrainingTask,
    pairs: list[ImagePair],
    bands: list[int],
    normalization: Normalization,
    best_entry: dict[str, Any] | None,
    summary: dict[str, Any],
) -> ModelMetadata:
    first = pairs[0].image
    return ModelMetadata(
        task=config.task,
        architecture=task.architecture,
        hyperparameters=task.hyperparameters,
        bands=bands,
        input_dtype=first.dtype,
        band_count=first.count,
        normalization=normalization.to_dict(),
        patch_size=config.patch,
        pixel_size=list(first.pixel_size),
        crs=first.crs,
        classes=task.classes,
        anomaly=task.anomaly_section(best_entry),
        training=summary,
        raster_profile=describe_rasters(first, bands),
    )
