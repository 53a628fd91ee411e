"""Which rasters of an archive already have complete outputs, so that running a job again skips
them, and a task that Dask runs again (its result was lost with a worker) does not redo its raster.

Outputs appear under their final names only when they are complete (`engine.inference.outputs.OutputSet`
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

from engine.inference.heads import output_names
from engine.inference.predict import PredictionResult, PredictOptions
from engine.models.metadata import ModelMetadata
from engine.vectorize.prediction import polygon_file_name

SHA256_TAG = "MODELAI_MODEL_SHA256"


def finished_prediction(
    metadata: ModelMetadata, raster: Path, output_dir: Path, options: PredictOptions, model_sha256: str
) -> PredictionResult | None:
    """What an earlier run (or an earlier try of this task) predicted for ``raster`` with this model,
    read back from its complete outputs; None where any output is missing or from elsewhere."""
    names = output_names(metadata, raster.stem, options.probabilities)
    if options.polygons:
        names["polygons"] = polygon_file_name(metadata, raster.stem)
    outputs = {key: output_dir / name for key, name in names.items()}
    if not all(path.is_file() for path in outputs.values()):
        return None
    try:
        summary = json.loads(outputs["summary"].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(summary, dict) or summary.get("raster") != str(raster):
        return None
    if any(_model_sha256(path) != model_sha256 for path in outputs.values() if path.suffix == ".tif"):
        return None
    return PredictionResult(raster, outputs, summary, float(summary.get("seconds") or 0.0))


def _model_sha256(path: Path) -> str | None:
    try:
        with rasterio.open(path) as dataset:
            return dataset.tags().get(SHA256_TAG)
    except RasterioError:
        return None
