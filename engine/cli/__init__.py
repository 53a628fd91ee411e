"""The ``modelai`` command: one parser, one subcommand module per verb, one error policy.

Exit codes: 0 success, 1 internal error (one line naming the job that recorded the traceback; set
MODELAI_DEBUG=1 to see it on the terminal), 2 bad input (one line on stderr: which file, what is
wrong, what to do), 3 a check of ``--self-test`` failed, 130 cancelled. The first Ctrl-C (or SIGTERM,
or Ctrl-Break) asks the running job to stop at the next batch or tile (it saves a checkpoint or
removes partial outputs); a second one aborts at once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from engine import __version__
from engine.cli.console import make_standard_streams_safe
from engine.errors import EngineError, JobCancelled
from engine.host_memory import keep_freed_memory
from engine.progress import CancelToken

EXIT_OK = 0
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_CANCELLED = 130
EXIT_CODES = (
    "Exit codes: 0 success, 1 internal error (the job records the traceback), 2 bad input (one line"
    " on stderr says what to change), 3 a --self-test check failed, 130 cancelled (Ctrl-C or SIGTERM)."
)
QUIET, NORMAL, VERBOSE = -1, 0, 1
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGBREAK") if hasattr(signal, name)
)

Command = Callable[[argparse.Namespace, CancelToken], int]


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser for ``argv``: in full for the verb it names, the other verbs by name only.

    Only the named verb's module is imported (see `engine.cli.commands`), so ``modelai --help``
    answers without loading torch. Global options are accepted before or after the verb.
    """
    from engine.cli import commands

    parser = argparse.ArgumentParser(
        prog="modelai",
        description="Offline deep learning on multispectral rasters (segmentation, anomaly detection).",
        epilog=EXIT_CODES,
    )
    parser.add_argument("--version", action="version", version=f"modelai {__version__}")
    _add_global_options(parser, default=None)
    parser.add_argument(
        "--self-test",
        action="store_true",
        help="check this installation (GDAL/PROJ, GeoTIFF, training and prediction on the device) and exit",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.register(subparsers, _verb_of(argv))
    for subparser in _subparsers_below(parser):
        _add_global_options(subparser, default=argparse.SUPPRESS)
        subparser.epilog = subparser.epilog or EXIT_CODES
    parser.set_defaults(verbosity=NORMAL)
    return parser


def _add_global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """``--home``, ``-q`` and ``-v``; below the top level their default is SUPPRESS, so that an
    option given before the verb is not reset by the verb's parser."""
    parser.add_argument(
        "--home",
        metavar="DIR",
        default=default,
        help="data folder with the job store, models and logs (default: $MODELAI_HOME, else the"
        " per-user data folder)",
    )
    levels = {
        ("-q", "--quiet"): (QUIET, "print only results, warnings and errors (no progress, no epoch lines)"),
        ("-v", "--verbose"): (VERBOSE, "more progress lines in logs, and the traceback of an internal error"),
    }
    for flags, (level, text) in levels.items():
        parser.add_argument(
            *flags, dest="verbosity", action="store_const", const=level, default=argparse.SUPPRESS, help=text
        )


def _verb_of(argv: Sequence[str]) -> str | None:
    """The first word of ``argv`` after the global options: the verb, if there is one."""
    globals_only = argparse.ArgumentParser(prog="modelai", add_help=False)
    _add_global_options(globals_only, default=None)
    _, rest = globals_only.parse_known_args(list(argv))
    return next((word for word in rest if not word.startswith("-")), None)


def _subparsers_below(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser of every verb and sub-verb under ``parser``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found += [child, *_subparsers_below(child)]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``modelai`` console script."""
    multiprocessing.freeze_support()
    make_standard_streams_safe()
    keep_freed_memory()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.self_test == (args.command is not None):
        parser.error("choose a COMMAND, or run --self-test alone")
    if args.self_test:
        from engine.cli import selftest_cmd

        args.func = selftest_cmd.run
    cancel = CancelToken()
    previous = {number: signal.signal(number, _first_signal_cancels(cancel)) for number in STOP_SIGNALS}
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
        if args.verbosity == VERBOSE:
            traceback.print_exc()
        print(f"modelai: internal error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _first_signal_cancels(cancel: CancelToken) -> Callable[[int, FrameType | None], None]:
    """Ctrl-C, SIGTERM (a service manager, ``kill``) or Ctrl-Break: stop cleanly; a second one aborts."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if cancel.cancelled:
            raise KeyboardInterrupt
        cancel.cancel()
        name = signal.Signals(signum).name
        print(f"\nmodelai: {name}: stopping after the current step (again to abort)...", file=sys.stderr)

    return handler


def _one_line(exc: Exception) -> str:
    """The error and where its traceback is: the job that recorded it, else how to see it."""
    where = " ".join(getattr(exc, "__notes__", [])) or "Run again with MODELAI_DEBUG=1 to see the traceback."
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first_line}. {where}"
