"""``modelai predict MODEL RASTERS... -o FOLDER``: tiled prediction of rasters, files, folders or globs."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.commands import VERBS
from engine.cli.results import add_json_option, outcome_json, print_json
from engine.cli.terminal import TerminalReporter, format_duration
from engine.cli.train import _bands as band_list  # the same "1,2,3" syntax as train --bands
from engine.device import PRECISIONS
from engine.inference.predict import PredictionResult, PredictOptions
from engine.jobs import runner
from engine.jobs.specs import PredictSpec
from engine.progress import CancelToken
from engine.rasters.read import NODATA_HELP, find_rasters

DEFAULTS = PredictOptions()


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the ``predict`` verb."""
    parser = subparsers.add_parser(
        "predict",
        help=VERBS["predict"].summary,
        description=(
            "Predict every raster with a trained model. The task (segmentation or anomaly) comes from "
            "the model file. Outputs are Cloud Optimized GeoTIFFs named after each input, with a JSON "
            "summary (and a QGIS style for class maps)."
        ),
    )
    parser.add_argument("model", type=Path, help="model file (.safetensors) from `modelai train`")
    parser.add_argument(
        "rasters",
        nargs="+",
        help="rasters GDAL reads (GeoTIFF, VRT, JP2, /vsizip/...), folders of them, or globs",
    )
    parser.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    parser.add_argument(
        "--tile", type=int, default=DEFAULTS.tile, help="tile size in pixels (default %(default)s)"
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=DEFAULTS.overlap,
        help="pixels shared by neighbouring tiles, blended without seams (default %(default)s)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULTS.batch_size, help="tiles per batch (default %(default)s)"
    )
    parser.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=DEFAULTS.precision,
        help="arithmetic precision; auto: mixed on a GPU or a CPU with native bf16 (default auto)",
    )
    parser.add_argument(
        "--probabilities", action="store_true", help="also write per-class probabilities (segmentation)"
    )
    parser.add_argument(
        "--threshold", type=float, help="anomaly threshold on the reconstruction error (default: the model's)"
    )
    parser.add_argument(
        "--polygons",
        action="store_true",
        help="also write the regions as polygons, styled for QGIS (<stem>_classes.gpkg or "
        "<stem>_anomaly.gpkg)",
    )
    parser.add_argument(
        "--min-area",
        type=float,
        default=DEFAULTS.min_area,
        metavar="M2",
        help="with --polygons: drop regions smaller than this many square metres (default none)",
    )
    parser.add_argument(
        "--simplify",
        type=float,
        default=DEFAULTS.simplify,
        metavar="PIXELS",
        help="with --polygons: simplify edges by up to this many pixels, neighbours kept (default none)",
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average the 8 flips and quarter turns of each tile: 8x the time (segmentation models "
        "trained with flips and turns only)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--bands",
        type=band_list,
        metavar="1,2,...",
        help="raster bands to read for the model's bands, in its order (default: the model's band numbers)",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="read rasters at the model's pixel size, outputs on that grid (else >4x apart is refused)",
    )
    parser.add_argument("--nodata", type=float, metavar="VALUE", help=NODATA_HELP)
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="predict each raster as a task on a Dask cluster: local:N (N worker processes here), "
        "tcp://HOST:PORT or a scheduler file (.json); rasters and OUTPUT must be visible to every worker. "
        'Needs pip install "modelai-desktop[cluster]"',
    )
    add_json_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, cancel: CancelToken) -> int:
    """Runs the prediction as a recorded job and prints one line per raster with its outputs."""
    options = PredictOptions(
        tile=args.tile,
        overlap=args.overlap,
        batch_size=args.batch_size,
        device=args.device,
        precision=args.precision,
        probabilities=args.probabilities,
        threshold=args.threshold,
        tta=args.tta,
        overwrite=args.overwrite,
        polygons=args.polygons,
        min_area=args.min_area,
        simplify=args.simplify,
        bands=args.bands,
        resample=args.resample,
        nodata=args.nodata,
    )
    spec = PredictSpec(args.model, find_rasters(args.rasters), args.output, options, cluster=args.cluster)
    with runner.open_store(args.home) as store:
        outcome = runner.run(store, spec, TerminalReporter.for_args(args), cancel)
    if args.json:
        print_json(outcome_json(outcome))
    else:
        print_results(outcome.predictions, args.output, skipped=len(outcome.result.get("skipped", [])))
    return 0


def print_results(results: list[PredictionResult], output_dir: Path, skipped: int = 0) -> None:
    """One line per raster with its outputs and time, then the total (and the rasters a cluster run
    skipped because an earlier run completed them)."""
    for result in results:
        names = ", ".join(path.name for path in result.outputs.values())
        print(f"{result.raster.name}: {names} ({format_duration(result.seconds)})")
    done_before = f"; {skipped} skipped, complete from an earlier run" if skipped else ""
    print(f"{len(results)} raster(s) predicted into {output_dir}{done_before}")
