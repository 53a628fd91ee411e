"""``modelai models export-onnx MODEL -o MODEL.onnx``: a model for QGIS's Deepness plugin and onnxruntime.

Prints what Deepness will read (model type, tile, overlap, resolution) and anything the user must
know (an anomaly model declared as a regressor, an unknown resolution). ASCII only, for cp1252
consoles.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.cli import EXIT_OK
from engine.export.onnx_file import DEFAULT_OVERLAP, DEFAULT_TILE, OnnxExport, export_onnx
from engine.progress import CancelToken


def register(actions: argparse._SubParsersAction) -> None:
    """Adds ``models export-onnx`` to the ``models`` command's actions."""
    parser = actions.add_parser(
        "export-onnx",
        help="export a model to ONNX for the QGIS Deepness plugin (needs the onnx extra)",
        description="Export a model to ONNX with the metadata the QGIS Deepness plugin reads: "
        "normalisation folded into its standardisation, softmax (or the anomaly error) at the end.",
    )
    parser.add_argument("file", type=Path, metavar="MODEL", help="model file (.safetensors)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="ONNX file to write")
    parser.add_argument(
        "--tile", type=int, default=DEFAULT_TILE, help=f"tile side in pixels (default {DEFAULT_TILE})"
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=DEFAULT_OVERLAP,
        help=f"pixels shared by neighbouring tiles, written as a percentage (default {DEFAULT_OVERLAP})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    exported = export_onnx(args.file, args.output, args.tile, args.overlap, args.overwrite)
    print("\n".join(describe(exported)))
    return EXIT_OK


def describe(exported: OnnxExport) -> list[str]:
    """What was written, as the lines the command prints (ASCII only)."""
    values = {key: json.loads(value) for key, value in exported.properties.items()}
    resolution = values.get("resolution")
    lines = [
        f"Wrote {exported.path} (ONNX opset {exported.opset}, IR {exported.ir_version}, dynamic batch)",
        f"Deepness: {values['model_type']}, tile {exported.tile} px, overlap {values['tiles_overlap']} %, "
        + (f"resolution {resolution:g} cm/px" if resolution is not None else "resolution unknown"),
    ]
    lines.extend(f"Note: {note}" for note in exported.notes)
    return lines
