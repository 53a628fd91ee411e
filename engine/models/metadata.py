"""Model metadata: what a model file says about itself, checked field by field.

A model file's header is untrusted JSON (edited by hand, made by a newer ModelAI, or random), so
every field is type-checked and the fields are checked against each other (task and architecture,
bands and input channels, classes and threshold) before anything is built from them: a bad file is a
`ModelFileError` that says what is wrong, never a crash further on.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.errors import ModelFileError
from engine.models import ARCHITECTURES
from engine.rasters.normalize import Normalization

FORMAT_VERSION = 1
TASKS = ("segmentation", "anomaly")
RASTER_DTYPES = (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64", "float16", "float32", "float64",
)  # fmt: skip
_REDO = "Copy the model file again, or train a new model."
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
_REQUIRED = object()


@dataclass
class ClassInfo:
    """One segmentation class: the value written to the output mask, its name and display colour."""

    id: int
    name: str
    color: str  # "#rrggbb"


@dataclass
class ModelMetadata:
    """Everything besides the weights that a model needs to be rebuilt and applied correctly."""

    task: str
    architecture: str
    hyperparameters: dict[str, Any]
    bands: list[int]
    input_dtype: str
    normalization: dict[str, Any]
    patch_size: int
    pixel_size: list[float] | None
    crs: str | None
    classes: list[ClassInfo]
    anomaly: dict[str, Any] | None
    training: dict[str, Any]
    format_version: int = FORMAT_VERSION
    created: str = ""
    # Bands of the rasters it was trained on, so that a raster with other bands is refused even when
    # it has the bands numbered in ``bands``; None in files written before it was recorded.
    band_count: int | None = None
    # Band names and wavelengths, ground pixel size in metres and the pixel size's unit of the
    # training rasters (see `engine.profiles`); None in files written before it was recorded.
    raster_profile: dict[str, Any] | None = None

    def to_json(self) -> str:
        """Serialise to the JSON text stored in the model file's header."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: Path) -> ModelMetadata:
        """Parse and validate metadata; ``source`` names the file in error messages.

        Raises:
            ModelFileError: the text is not a JSON object, a field is missing or of the wrong type,
                the fields contradict each other, or the format is newer than this app reads.
        """
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise invalid_model(source, f"its metadata is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise invalid_model(source, "its metadata is not a JSON object")

        def get(name: str, check: Callable[[Any], bool], expected: str, default: Any = _REQUIRED) -> Any:
            """One field's value, refusing a missing or mistyped one with its name."""
            if name not in data:
                if default is _REQUIRED:
                    raise invalid_model(source, f"field {name!r} is missing")
                return default
            if not check(data[name]):
                shown = repr(data[name])
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                raise invalid_model(source, f"field {name!r} must be {expected}, not {shown}")
            return data[name]

        version = get("format_version", is_int, "an integer", default=FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise ModelFileError(
                f"{source} was made by a newer ModelAI (model format {version}; this app reads up to "
                f"{FORMAT_VERSION}). Update the app to use this model."
            )
        if version < 1:
            raise invalid_model(source, f"format_version {version} does not exist")

        metadata = cls(
            task=get("task", lambda v: v in TASKS, f"one of {', '.join(TASKS)}"),
            architecture=get("architecture", lambda v: isinstance(v, str), "a string"),
            hyperparameters=get("hyperparameters", _is_dict, "a JSON object"),
            bands=get("bands", _is_band_list, "a non-empty list of band numbers (1, 2, ...)"),
            input_dtype=get(
                "input_dtype", lambda v: v in RASTER_DTYPES, "a raster data type such as 'uint16'"
            ),
            normalization=get("normalization", _is_dict, "a JSON object"),
            patch_size=get("patch_size", lambda v: is_int(v) and v >= 1, "a positive integer"),
            pixel_size=get("pixel_size", _is_pixel_size, "null or [x, y] positive numbers"),
            crs=get("crs", lambda v: v is None or isinstance(v, str), "null or a string"),
            classes=[ClassInfo(**c) for c in get("classes", _is_class_list, "a list of {id, name, color}")],
            anomaly=get("anomaly", lambda v: v is None or _is_dict(v), "null or a JSON object"),
            training=get("training", _is_dict, "a JSON object"),
            format_version=version,
            created=get("created", lambda v: isinstance(v, str), "a string", default=""),
            band_count=get("band_count", _is_band_count, "null or a positive integer", default=None),
            raster_profile=get(
                "raster_profile", lambda v: v is None or _is_dict(v), "null or a JSON object", default=None
            ),
        )
        _check_consistency(metadata, source)
        return metadata


def _check_consistency(metadata: ModelMetadata, source: Path) -> None:
    """Refuse fields that are each well-formed but cannot belong to the same model."""
    if metadata.architecture not in ARCHITECTURES:
        raise ModelFileError(
            f"{source} uses the network {metadata.architecture!r}, which this ModelAI does not know "
            f"({', '.join(ARCHITECTURES)}). It may come from a newer ModelAI: update the app."
        )
    task_of_architecture = ARCHITECTURES[metadata.architecture].task
    if metadata.task != task_of_architecture:
        raise invalid_model(
            source, f"{metadata.architecture} is for {task_of_architecture}, not {metadata.task}"
        )
    in_channels = metadata.hyperparameters.get("in_channels", len(metadata.bands))
    if in_channels != len(metadata.bands):
        raise invalid_model(
            source, f"the network takes {in_channels!r} bands, but {len(metadata.bands)} are listed"
        )
    if metadata.band_count is not None and max(metadata.bands) > metadata.band_count:
        raise invalid_model(
            source, f"it reads band {max(metadata.bands)} of {metadata.band_count}-band rasters"
        )
    _check_normalization(metadata, source)
    if metadata.task == "segmentation" and not metadata.classes:
        raise invalid_model(source, "a segmentation model needs at least one class")
    if len({c.id for c in metadata.classes}) != len(metadata.classes):
        raise invalid_model(source, "two classes have the same id")
    if metadata.task == "anomaly" and not (
        isinstance(metadata.anomaly, dict) and _is_number(metadata.anomaly.get("threshold"))
    ):
        raise invalid_model(source, "an anomaly model needs anomaly.threshold, a finite number")


def _check_normalization(metadata: ModelMetadata, source: Path) -> None:
    """The normalisation must rebuild and cover each input band, or prediction would fail later."""
    try:
        normalization = Normalization.from_dict(metadata.normalization)
    except ValueError as exc:
        raise invalid_model(source, f"its normalisation block is unusable ({exc})") from exc
    if len(normalization.offset) != len(metadata.bands):
        raise invalid_model(
            source,
            f"its normalisation covers {len(normalization.offset)} band(s), "
            f"but the model reads {len(metadata.bands)}",
        )


def kept_validation(training: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The validation of the weights a model keeps, from its training summary, or None.

    Runs that recomputed the kept weights' batch-norm statistics validated them again (``kept``);
    that is the model's score. Older runs, and runs that did not, have their best epoch's entry.
    """
    kept = training.get("kept")
    if isinstance(kept, Mapping):
        return kept
    history = training.get("history") or []
    return next((entry for entry in history if entry.get("epoch") == training.get("best_epoch")), None)


def recomputed_note(training: Mapping[str, Any]) -> str:
    """`` (epochs 12, 14, 20 averaged, batch-norm statistics recomputed; epoch 14 alone: 0.7002)`` after
    the best score, where that applies.

    The best epoch's point in the history keeps the score it had alone, with training's statistics,
    so a reader comparing the two is told why they differ.
    """
    kept, monitor = training.get("kept"), training.get("monitor")
    if not isinstance(kept, Mapping):
        return ""
    history = training.get("history") or []
    scored = next((entry for entry in history if entry.get("epoch") == kept.get("epoch")), None)
    before = None if scored is None else scored.get("metrics", {}).get(monitor)
    averaged = kept.get("averaged_epochs") or []
    if len(averaged) < 2:
        was = "" if before is None else f"; {before:.4f} before"
        return f" (batch-norm statistics recomputed{was})"
    alone = "" if before is None else f"; epoch {kept.get('epoch')} alone: {before:.4f}"
    return f" (epochs {', '.join(map(str, averaged))} averaged, batch-norm statistics recomputed{alone})"


def repeated_class_names(names: Iterable[str]) -> list[str]:
    """Names given to more than one class: metrics, curves and legends are keyed by class name."""
    return sorted(name for name, count in Counter(names).items() if count > 1)


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return is_int(value) or (isinstance(value, float) and math.isfinite(value))


def _is_band_count(value: Any) -> bool:
    return value is None or (is_int(value) and value >= 1)


def _is_dict(value: Any) -> bool:
    return isinstance(value, dict)


def _is_band_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(is_int(b) and b >= 1 for b in value)


def _is_pixel_size(value: Any) -> bool:
    return value is None or (
        isinstance(value, list) and len(value) == 2 and all(_is_number(v) and v > 0 for v in value)
    )


def _is_class_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(c, dict)
        and set(c) == {"id", "name", "color"}
        and is_int(c["id"])
        and c["id"] >= 0
        and isinstance(c["name"], str)
        and isinstance(c["color"], str)
        and _COLOR.fullmatch(c["color"]) is not None
        for c in value
    )


def invalid_model(source: Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{source} is not a valid ModelAI model: {problem}. {_REDO}")
