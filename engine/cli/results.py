"""``--json``: the result of a command as one JSON document on stdout, for scripts.

Progress and warnings still go to stderr, so ``modelai predict ... --json > result.json`` keeps a
clean document. JSON escapes every non-ASCII character, so it also survives any console encoding.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from engine.jobs.runner import JobOutcome


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """The ``--json`` flag, worded the same on every command that has it."""
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")


def print_json(value: Any) -> None:
    """Prints ``value`` as indented JSON; paths, dates, enums and dataclasses become plain values."""
    print(json.dumps(value, indent=2, default=_plain))


def outcome_json(outcome: JobOutcome) -> dict[str, Any]:
    """What ``train --json`` and ``predict --json`` print: the job id, the stored result and, for a
    prediction, the files written for each raster."""
    document: dict[str, Any] = {"job_id": outcome.job_id, "status": "succeeded", **outcome.result}
    if outcome.predictions:
        document["rasters"] = [
            {**entry, "outputs": {kind: str(path) for kind, path in prediction.outputs.items()}}
            for entry, prediction in zip(outcome.result["rasters"], outcome.predictions, strict=True)
        ]
    return document


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
