"""The ``modelai`` command: one parser, one subcommand module per verb, one error policy.

Exit codes: 0 success, 2 bad input (one line on stderr: which file, what is wrong, what to do),
130 cancelled. The first Ctrl-C asks the running job to stop at the next batch or tile (it saves a
checkpoint or removes partial outputs); a second one aborts at once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import signal
import sys
from collections.abc import Callable, Sequence
from types import FrameType

from engine import __version__
from engine.errors import EngineError, JobCancelled
from engine.progress import CancelToken

EXIT_OK = 0
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
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in commands.REGISTRARS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelai`` console script."""
    multiprocessing.freeze_support()
    parser = build_parser()
    args = parser.parse_args(argv)
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
    finally:
        signal.signal(signal.SIGINT, previous)


def _first_interrupt_cancels(cancel: CancelToken) -> Callable[[int, FrameType | None], None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        print("\nmodelai: stopping after the current step (Ctrl-C again to abort)…", file=sys.stderr)

    return handler
