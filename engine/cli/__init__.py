"""The ``modelai`` command: one parser, one subcommand module per verb, one error policy.

Exit codes: 0 success, 1 internal error (one line naming the job that recorded the traceback; set
MODELAI_DEBUG=1 to see it on the terminal), 2 bad input (one line on stderr: which file, what is
wrong, what to do), 3 a check of ``--self-test`` failed, 130 cancelled. The first Ctrl-C asks the
running job to stop at the next batch or tile (it saves a checkpoint or removes partial outputs); a
second one aborts at once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from engine import __version__
from engine.errors import EngineError, JobCancelled
from engine.host_memory import keep_freed_memory
from engine.progress import CancelToken

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130

Command = Callable[[argparse.Namespace, CancelToken], int]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser; each subcommand module registers its own verbs."""
    from engine.cli import commands

    parser = argparse.ArgumentParser(
        prog="modelai",
        description="Offline deep learning on multispectral rasters (segmentation, anomaly detection).",
    )
    parser.add_argument("--version", action="version", version=f"modelai {__version__}")
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="data folder with the job store, models and logs (default: $MODELAI_HOME, else the"
        " per-user data folder)",
    )
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (GDAL/PROJ, GeoTIFF, training and prediction on the device) and exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in commands.REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelai`` console script."""
    multiprocessing.freeze_support()
    keep_freed_memory()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.self_test == (args.command is not None):
        parser.error("choose a COMMAND, or run --self-test alone")
    if args.self_test:
        from engine.cli import selftest_cmd

        args.func = selftest_cmd.run
    cancel = CancelToken()
    previous = signal.signal(signal.SIGINT, _first_interrupt_cancels(cancel))
    try:
        return int(args.func(args, cancel))
    except JobCancelled as exc:
        print(f"modelai: {exc}", file=sys.stderr)
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        print("modelai: interrupted.", file=sys.stderr)
        return EXIT_CANCELLED
    except EngineError as exc:
        print(f"modelai: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        if os.environ.get("MODELAI_DEBUG") == "1":
            raise
        print(f"modelai: internal error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        signal.signal(signal.SIGINT, previous)


def _first_interrupt_cancels(cancel: CancelToken) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\nmodelai: stopping after the current step (Ctrl-C again to abort)…", file=sys.stderr)

    return handler


def _one_line(exc: Exception) -> str:
    """The error and where its traceback is: the job that recorded it, else how to see it."""
    where = " ".join(getattr(exc, "__notes__", [])) or "Run again with MODELAI_DEBUG=1 to see the traceback."
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}. {where}"
