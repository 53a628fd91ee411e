"""The metadata an exported file carries: the keys Deepness reads, and our own full description.

Deepness (v0.6) reads ``metadata_props`` and parses every value with ``json.loads``, so strings
carry their quotes. Keys it reads: ``model_type``, ``class_names`` (``{"0": name, ...}`` by output
channel, no gaps), ``resolution`` (centimetres per pixel), ``tile_size`` (its docs and tools write
``tiles_size``, so both are set), ``tiles_overlap`` (percent), ``seg_thresh`` and
``standardization_mean``/``standardization_std``. Our own key ``modelai`` holds everything else a
reader may need: bands, classes and colours, the normalisation, the threshold, the source model.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from engine.export.graph import InputContract
from engine.models.metadata import ModelMetadata
from engine.profiles.ground import ground_pixel_size

DEEPNESS_SEGMENTOR = "Segmentor"
# Deepness has no anomaly type; a regressor shows a per-pixel value map, which the error map is.
DEEPNESS_REGRESSOR = "Regressor"
ANOMALY_NOTE = (
    "Deepness has no anomaly-detection model type: this file is declared a Regressor, so Deepness "
    "shows the reconstruction-error heat map; pixels above anomaly_threshold are anomalous."
)
EXPORT_FORMAT = 1


def segmentation_threshold(classes: int) -> float:
    """A ``seg_thresh`` that never overrides the most probable class.

    Deepness drops pixels whose best probability is below it; a softmax over k classes always has
    a best probability of at least 1/k, so this threshold keeps our argmax class map.
    """
    if classes <= 2:
        return 0.5
    return math.floor(100 / classes) / 100


def resolution_cm(metadata: ModelMetadata) -> float | None:
    """The training rasters' ground pixel size in centimetres (mean of x and y), None if unknown."""
    profile = metadata.raster_profile or {}
    metres = profile.get("ground_pixel_size_m")
    if metres is None and metadata.pixel_size is not None:
        metres = ground_pixel_size(metadata.pixel_size, metadata.crs)
    if metres is None:
        return None
    return round(100 * (metres[0] + metres[1]) / 2, 4)


def deepness_properties(
    metadata: ModelMetadata,
    contract: InputContract,
    tile: int,
    overlap: int,
    source: dict[str, str],
) -> dict[str, str]:
    """Every ``metadata_props`` entry of the exported file, each value JSON-encoded."""
    if metadata.task == "segmentation":
        model_type = DEEPNESS_SEGMENTOR
        class_names = {str(index): info.name for index, info in enumerate(metadata.classes)}
    else:
        model_type = DEEPNESS_REGRESSOR
        class_names = {"0": "reconstruction error"}
    values: dict[str, Any] = {
        "model_type": model_type,
        "class_names": class_names,
        "tile_size": tile,
        "tiles_size": tile,
        "tiles_overlap": math.ceil(100 * overlap / tile),
        "standardization_mean": contract.mean,
        "standardization_std": contract.std,
    }
    if metadata.task == "segmentation":
        values["seg_thresh"] = segmentation_threshold(len(metadata.classes))
    resolution = resolution_cm(metadata)
    if resolution is not None:
        values["resolution"] = resolution
    values["modelai"] = own_description(metadata, contract, source)
    return {key: json.dumps(value) for key, value in values.items()}


def own_description(
    metadata: ModelMetadata, contract: InputContract, source: dict[str, str]
) -> dict[str, Any]:
    """Our metadata for any reader: what the input must be, what the output is, where it came from."""
    anomaly = metadata.task == "anomaly"
    description: dict[str, Any] = {
        "export_format": EXPORT_FORMAT,
        "task": metadata.task,
        "architecture": metadata.architecture,
        "bands": metadata.bands,
        "band_count": metadata.band_count,
        "input_dtype": metadata.input_dtype,
        "input": "raw pixel values of the bands above, in that order, then (x / 255 - mean) / std",
        "normalization": metadata.normalization,
        "normalization_in_graph": contract.normalization_in_graph is not None,
        "output": "reconstruction error per pixel" if anomaly else "class probabilities per pixel",
        "classes": [asdict(info) for info in metadata.classes],
        "pixel_size": metadata.pixel_size,
        "crs": metadata.crs,
        "raster_profile": metadata.raster_profile,
        "source_model": source,
    }
    if anomaly and metadata.anomaly is not None:
        description["anomaly_threshold"] = metadata.anomaly["threshold"]
        description["note"] = ANOMALY_NOTE
    return description
