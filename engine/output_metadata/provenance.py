"""Provenance tags written into every output GeoTIFF: which model, which task, which software.

A map passed on without its JSON summary still says where it came from: `gdalinfo` lists the tags
under "Metadata" and QGIS shows them in the layer's properties. The model's SHA-256 tells two
models of the same name apart.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import engine
from engine.models.metadata import ModelMetadata

SOFTWARE = f"ModelAI Desktop {engine.__version__}"
_HASH_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    """The file's SHA-256 in hex, read in chunks (a model can be hundreds of megabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def provenance_tags(
    model_path: Path, model_sha256: str, metadata: ModelMetadata, source: Path, threshold: float | None
) -> dict[str, str]:
    """Dataset tags for the outputs of ``source`` predicted with the model at ``model_path``."""
    tags = {
        "TIFFTAG_SOFTWARE": SOFTWARE,
        "TIFFTAG_DATETIME": datetime.now(UTC).strftime("%Y:%m:%d %H:%M:%S"),
        "MODELAI_MODEL": model_path.name,
        "MODELAI_MODEL_SHA256": model_sha256,
        "MODELAI_TASK": metadata.task,
        "MODELAI_ARCHITECTURE": metadata.architecture,
        "MODELAI_BANDS": ",".join(map(str, metadata.bands)),
        "MODELAI_SOURCE": source.name,
    }
    if threshold is not None:
        tags["MODELAI_THRESHOLD"] = repr(float(threshold))
    return tags
