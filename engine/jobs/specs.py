"""What a job is asked to do, as plain dataclasses that round-trip through the job store's JSON.

The window and the command line both build a spec and hand it to :mod:`engine.jobs.runner`, so one
headless test covers both. Paths are made absolute before a spec is stored, so ``modelai jobs
rerun`` works from any folder. :func:`validate` runs before a job is queued: a spec that can never
run (a missing file, a model whose bands a raster lacks, an image without its mask) is refused
with a clear error and leaves no row in the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from engine.cluster.checks import validate_cluster_prediction
from engine.datasets import find_training_data, select_bands
from engine.device import autocast_dtype, resolve_device
from engine.errors import EngineError, JobStoreError, ModelFileError, OutputError
from engine.inference.checks import check_compatibility, check_free_space, check_outputs
from engine.inference.heads import check_classes
from engine.inference.outputs import check_writable_folder
from engine.inference.predict import PredictOptions
from engine.labels.training import with_label_masks
from engine.models.file import check_model_file
from engine.progress import RecordingReporter
from engine.training import check_resumable
from engine.training.config import TASKS, TrainConfig
from engine.training.segmentation import make_segmentation_task
from engine.vectorize.prediction import check_polygon_outputs

TRAIN_KIND_PREFIX = "train-"
PREDICT_KIND = "predict"


@dataclass
class TrainSpec:
    """Train a model; the task (segmentation or anomaly) is part of the configuration."""

    config: TrainConfig

    @property
    def kind(self) -> str:
        """``train-segmentation`` or ``train-anomaly``: what the job list shows."""
        return TRAIN_KIND_PREFIX + self.config.task


@dataclass
class PredictSpec:
    """Apply one model to rasters, writing each raster's outputs into ``output_dir``.

    ``cluster`` (``local:N``, ``tcp://HOST:PORT`` or a scheduler file) runs each raster as a task on
    a Dask cluster instead of in this process; see :mod:`engine.cluster`.
    """

    model: Path
    rasters: list[Path]
    output_dir: Path
    options: PredictOptions = field(default_factory=PredictOptions)
    cluster: str | None = None
    kind: ClassVar[str] = PREDICT_KIND


JobSpec = TrainSpec | PredictSpec


def spec_to_dict(spec: JobSpec) -> dict[str, Any]:
    """JSON-ready values of a spec; :func:`spec_from_dict` with ``spec.kind`` rebuilds it."""
    if isinstance(spec, TrainSpec):
        return spec.config.to_dict()
    stored = {
        "model": str(spec.model),
        "rasters": [str(path) for path in spec.rasters],
        "output_dir": str(spec.output_dir),
        "options": asdict(spec.options),
    }
    # Only where it is set: a local run's spec stays as earlier versions wrote and read it.
    return stored if spec.cluster is None else {**stored, "cluster": spec.cluster}


def spec_from_dict(kind: str, data: dict[str, Any]) -> JobSpec:
    """Rebuild a stored spec.

    Raises:
        JobStoreError: the kind is unknown or the values do not fit it (a store written by a newer
            ModelAI, or edited by hand).
    """
    try:
        if kind.startswith(TRAIN_KIND_PREFIX) and kind.removeprefix(TRAIN_KIND_PREFIX) in TASKS:
            config = TrainConfig.from_dict(data)
            if config.task != kind.removeprefix(TRAIN_KIND_PREFIX):
                raise EngineError(f"its task is {config.task!r}")
            return TrainSpec(config)
        if kind == PREDICT_KIND:
            option_names = {option.name for option in fields(PredictOptions)}
            unknown = sorted(set(data.get("options", {})) - option_names)
            if unknown:
                raise EngineError(f"unknown prediction option(s) {', '.join(unknown)}")
            return PredictSpec(
                model=Path(data["model"]),
                rasters=[Path(path) for path in data["rasters"]],
                output_dir=Path(data["output_dir"]),
                options=PredictOptions(**data.get("options", {})),
                cluster=data.get("cluster"),
            )
    except (EngineError, KeyError, TypeError) as exc:
        raise JobStoreError(
            f"the stored {kind} job cannot be read ({exc}): it was written by another ModelAI version;"
            " start it again from `modelai train` or `modelai predict`"
        ) from exc
    raise JobStoreError(
        f"unknown job kind {kind!r}: it was written by a newer ModelAI; update ModelAI to run it"
    )


def absolute_spec(spec: JobSpec) -> JobSpec:
    """The same spec with every path absolute, so it runs the same from any working folder."""
    if isinstance(spec, PredictSpec):
        return dataclasses.replace(
            spec,
            model=spec.model.absolute(),
            rasters=[path.absolute() for path in spec.rasters],
            output_dir=spec.output_dir.absolute(),
        )
    config = spec.config
    return TrainSpec(
        dataclasses.replace(
            config,
            images=[path.absolute() for path in config.images],
            masks=None if config.masks is None else [path.absolute() for path in config.masks],
            output=config.output.absolute(),
            resume=None if config.resume is None else config.resume.absolute(),
            labels=None if config.labels is None else config.labels.absolute(),
            checkpoint_dir=None if config.checkpoint_dir is None else config.checkpoint_dir.absolute(),
            init_model=None if config.init_model is None else config.init_model.absolute(),
        )
    )


def allow_overwrite(spec: JobSpec) -> JobSpec:
    """The same spec allowed to replace the outputs an earlier run of it wrote."""
    if isinstance(spec, TrainSpec):
        return TrainSpec(dataclasses.replace(spec.config, overwrite=True))
    return dataclasses.replace(spec, options=dataclasses.replace(spec.options, overwrite=True))


def validate(spec: JobSpec) -> list[str]:
    """Check that a spec can run before it is queued; return warnings the user should read.

    Reads raster headers, and for training scans the masks' values, but trains or predicts nothing.

    Raises:
        EngineError: (a subclass naming the file and the fix) the job could never succeed.
    """
    if isinstance(spec, TrainSpec):
        return _validate_training(spec.config)
    return _validate_prediction(spec)


def _validate_training(config: TrainConfig) -> list[str]:
    config.validate()
    autocast_dtype(resolve_device(config.device), config.precision)
    if config.resume is not None and not config.resume.is_file():
        raise ModelFileError(
            f"the checkpoint {config.resume} to resume from does not exist: check the path, or train anew"
        )
    check_resumable(config)
    if config.init_model is not None and not config.init_model.is_file():
        raise ModelFileError(
            f"the model {config.init_model} to start from does not exist: check the path, "
            "or train from scratch"
        )
    if config.output.exists() and not config.overwrite:
        raise OutputError(f"{config.output} already exists. Choose another name or pass --overwrite.")
    check_writable_folder(config.output.parent)
    reporter = RecordingReporter()
    config = with_label_masks(config, reporter)
    masks = config.masks if config.task == "segmentation" else None
    pairs = find_training_data(config.images, masks, reporter, config.mask_values, config.nodata)
    bands = select_bands(pairs, config.bands)
    if config.task == "segmentation":
        make_segmentation_task(config, pairs, len(bands))
    return reporter.warnings()


def _validate_prediction(spec: PredictSpec) -> list[str]:
    if not spec.rasters:
        raise EngineError("no raster to predict: give at least one GeoTIFF file or folder.")
    if spec.cluster is not None:
        return validate_cluster_prediction(spec)
    metadata = check_model_file(spec.model)
    if metadata.task == "segmentation":
        check_classes(metadata, spec.model)
    autocast_dtype(resolve_device(spec.options.device), spec.options.precision)
    warnings = []
    options = spec.options
    for raster in spec.rasters:
        found = check_compatibility(
            metadata, raster, spec.model.name, options.bands, options.resample, options.nodata
        )
        warnings.extend(found)
    check_outputs(metadata, spec.rasters, spec.output_dir, spec.options.probabilities, spec.options.overwrite)
    if spec.options.polygons:
        check_polygon_outputs(metadata, spec.rasters, spec.output_dir, spec.options.overwrite)
    warnings.extend(check_free_space(metadata, spec.rasters, spec.output_dir, spec.options.probabilities))
    return warnings
