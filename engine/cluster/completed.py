"""Which rasters of an archive already have complete outputs, so that running a job again skips them.

Outputs appear under their final names only when they are complete (`engine.outputs.OutputSet`
renames them together), so a raster is done when every output it should have is there, its
summary names this raster, and its GeoTIFFs carry the SHA-256 of this model (a model retrained
under the same name predicts again). Other settings (tile, overlap) are not compared:
``--overwrite`` predicts everything again.
"""

from __future__ import annotations

import json
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError

from engine.inference import PredictOptions
from engine.model_metadata import ModelMetadata
from engine.prediction_heads import output_names
from engine.vectorize.prediction import polygon_file_name

SHA256_TAG = "MODELAI_MODEL_SHA256"


def outputs_complete(
    metadata: ModelMetadata, raster: Path, output_dir: Path, options: PredictOptions, model_sha256: str
) -> bool:
    """Whether an earlier run left every output of ``raster`` in ``output_dir``, made with this model."""
    names = output_names(metadata, raster.stem, options.probabilities)
    if options.polygons:
        names["polygons"] = polygon_file_name(metadata, raster.stem)
    if not all((output_dir / name).is_file() for name in names.values()):
        return False
    try:
        summary = json.loads((output_dir / names["summary"]).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(summary, dict) or summary.get("raster") != str(raster):
        return False
    return all(
        _model_sha256(output_dir / name) == model_sha256 for name in names.values() if name.endswith(".tif")
    )


def _model_sha256(path: Path) -> str | None:
    try:
        with rasterio.open(path) as dataset:
            return dataset.tags().get(SHA256_TAG)
    except RasterioError:
        return None
