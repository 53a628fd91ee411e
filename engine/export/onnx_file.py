"""``export_onnx``: a model file in, an ONNX file that Deepness (and any onnxruntime user) runs out.

The graph takes one NCHW float32 input with a dynamic batch and a fixed tile size, the size written
in the metadata (a tile the network can halve ``depth`` times, so Deepness cannot pick a size that
breaks it). It is traced with the TorchScript exporter at opset 17 and stored with ONNX IR <= 9:
Deepness's onnxruntime refuses IR 10. The file is checked by onnx's checker and written under a
temporary name first, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import engine
from engine.errors import EngineError, OutputError
from engine.export.deepness import ANOMALY_NOTE, deepness_properties, resolution_cm
from engine.export.graph import export_graph, input_contract
from engine.inference.outputs import OutputSet, check_writable_folder
from engine.models.file import load_model
from engine.models.metadata import ModelMetadata
from engine.rasters.normalize import Normalization

OPSET = 17
MAX_IR_VERSION = 9
DEFAULT_TILE = 512
DEFAULT_OVERLAP = 32
INPUT_NAME = "input"
OUTPUT_NAME = "output"


@dataclass(frozen=True)
class OnnxExport:
    """What was written: the file, its tile and overlap, opset and IR version, metadata and notes."""

    path: Path
    tile: int
    overlap: int
    opset: int
    ir_version: int
    properties: dict[str, str]
    notes: list[str]


def export_onnx(
    model_path: Path,
    output_path: Path,
    tile: int = DEFAULT_TILE,
    overlap: int = DEFAULT_OVERLAP,
    overwrite: bool = False,
) -> OnnxExport:
    """Exports a ModelAI model to ONNX with Deepness's metadata; returns what was written.

    Raises:
        ModelFileError: the model file cannot be loaded.
        EngineError: onnx is not installed, or the tile or overlap does not suit the network.
        OutputError: the output exists (without ``overwrite``) or cannot be written.
    """
    model_path, output_path = Path(model_path), Path(output_path)
    onnx = _import_onnx()
    network, metadata = load_model(model_path)
    tile = _check_tile(tile, overlap, int(getattr(network, "size_multiple", 1)), model_path)
    if output_path.exists() and not overwrite:
        raise OutputError(
            f"{output_path} already exists. Use --overwrite to replace it, or choose another name."
        )
    check_writable_folder(output_path.parent)
    contract = input_contract(Normalization.from_dict(metadata.normalization))
    graph = export_graph(metadata.task, network, contract)
    proto = onnx.load_from_string(_trace(graph, len(metadata.bands), tile))
    proto.ir_version = min(proto.ir_version, MAX_IR_VERSION)
    source = {"file": model_path.name, "sha256": hashlib.sha256(model_path.read_bytes()).hexdigest()}
    properties = deepness_properties(metadata, contract, tile, overlap, source)
    onnx.helper.set_model_props(proto, properties)
    proto.producer_name, proto.producer_version = "ModelAI", engine.__version__
    proto.doc_string = f"{metadata.task} model exported from {model_path.name} by ModelAI"
    onnx.checker.check_model(proto)
    _write(output_path, proto.SerializeToString())
    opset = max(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    return OnnxExport(output_path, tile, overlap, opset, proto.ir_version, properties, _notes(metadata))


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise EngineError(
            "Exporting to ONNX needs the onnx package, which is not installed. "
            "Install it with: pip install 'modelai-desktop[onnx]'."
        ) from exc
    return onnx


def _check_tile(tile: int, overlap: int, multiple: int, model_path: Path) -> int:
    if tile < multiple or tile % multiple:
        fitted = max(multiple, tile - tile % multiple)
        raise EngineError(
            f"--tile {tile} is not a multiple of {multiple}, which {model_path.name} needs; use {fitted}."
        )
    if not 0 <= overlap <= tile // 2:
        raise EngineError(f"--overlap {overlap} must be between 0 and half the tile ({tile // 2}).")
    return tile


def _trace(graph: torch.nn.Module, bands: int, tile: int) -> bytes:
    """The ONNX bytes of ``graph`` for ``(batch, bands, tile, tile)`` inputs, batch left dynamic."""
    buffer = io.BytesIO()
    example = torch.zeros(1, bands, tile, tile)
    with warnings.catch_warnings():
        # The tracer notes that shape checks become constants (the tile is fixed, so they are) and
        # that the TorchScript exporter is the older one (the newer one needs opset 18 or more).
        # Both are plain warnings to a user of the export, so none is shown.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            buffer,
            opset_version=OPSET,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )
    return buffer.getvalue()


def _write(path: Path, data: bytes) -> None:
    with OutputSet(path.parent) as outputs:
        temporary = outputs.temporary(path)
        temporary.write_bytes(data)
        outputs.stage(temporary, path)
        outputs.commit()


def _notes(metadata: ModelMetadata) -> list[str]:
    """What the user should know about the exported file."""
    notes = []
    if metadata.task == "anomaly":
        notes.append(ANOMALY_NOTE)
    if resolution_cm(metadata) is None:
        notes.append(
            "The training rasters' ground pixel size is unknown (no CRS, or degrees without a latitude), "
            "so the file has no 'resolution': set the map resolution in Deepness by hand."
        )
    return notes
