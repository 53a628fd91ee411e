"""A Reporter that draws a progress bar and per-epoch lines on the terminal.

On a terminal the bar is redrawn in place at most ten times a second, fitted to the terminal's
width (a line that wraps would add a line at every redraw) and cleared with spaces, not an escape
sequence that old Windows consoles print. Where the encoding cannot draw the bar's blocks it is
drawn in ASCII. When output goes to a file or a CI log, epoch lines are printed as they come, but
progress only every half minute and when a step outside the epochs starts and ends, so that logs
stay short.
``-q`` keeps warnings only; ``-v`` logs progress every 10 %.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO

from engine.cli import NORMAL, QUIET, VERBOSE
from engine.cli.console import can_encode
from engine.progress import EpochEvent, ProgressEvent

BAR_WIDTH = 24
MIN_BAR_WIDTH = 8
REDRAW_INTERVAL_S = 0.1
LOG_INTERVAL_S = 30.0
DEFAULT_COLUMNS = 80
BLOCKS = "█·"
ASCII_BLOCKS = "#."


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``3m05s`` or ``12s``; ``?`` when unknown."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


class TerminalReporter:
    """Shows ProgressEvents as a bar, EpochEvents as lines, messages as ``warning:`` lines."""

    def __init__(
        self,
        stream: TextIO | None = None,
        verbosity: int = NORMAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.verbosity = verbosity
        self.interactive = self.stream.isatty()
        self.clock = clock
        self.blocks = BLOCKS if can_encode(self.stream, BLOCKS) else ASCII_BLOCKS
        self._last_draw = 0.0
        self._last_log = clock()
        self._last_step: tuple[object, ...] = ()
        self._drawn_length = 0

    @classmethod
    def for_args(cls, args: argparse.Namespace) -> TerminalReporter:
        """A reporter on stderr at the verbosity that ``-q``/``-v`` chose."""
        return cls(verbosity=getattr(args, "verbosity", NORMAL))

    def on_progress(self, event: ProgressEvent) -> None:
        if self.verbosity <= QUIET:
            return
        if self.interactive:
            self._draw(event)
        elif self._worth_logging(event):
            self.stream.write(self._line(event, width=None) + "\n")
        self.stream.flush()

    def on_epoch(self, event: EpochEvent) -> None:
        if self.verbosity <= QUIET:
            return
        self._end_bar()
        parts = [f"epoch {event.epoch}/{event.epochs}", f"train loss {event.train_loss:.4f}"]
        if event.val_loss is not None:
            parts.append(f"val loss {event.val_loss:.4f}")
        parts.extend(f"{name} {value:.4f}" for name, value in event.metrics.items() if "/" not in name)
        parts.append(f"lr {event.lr:.2e}")
        parts.append(format_duration(event.duration_s))
        line = "  ".join(parts) + ("  *best*" if event.is_best else "")
        self.stream.write(line + "\n")
        per_class = [f"{name} {value:.3f}" for name, value in event.metrics.items() if "/" in name]
        if per_class:
            self.stream.write("    " + ", ".join(per_class) + "\n")
        self.stream.flush()

    def on_message(self, level: str, text: str) -> None:
        if self.verbosity <= QUIET and level != "warning":
            return
        self._end_bar()
        prefix = "warning: " if level == "warning" else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    def _draw(self, event: ProgressEvent) -> None:
        """Redraws the bar in place, padded with spaces over the longer line it replaces."""
        now = self.clock()
        finished = event.done >= event.total
        if not finished and now - self._last_draw < REDRAW_INTERVAL_S:
            return
        self._last_draw = now
        line = self._line(event, width=self._columns() - 1)
        self.stream.write("\r" + line.ljust(self._drawn_length))
        self._drawn_length = len(line)
        if finished:
            self._end_bar()

    def _worth_logging(self, event: ProgressEvent) -> bool:
        """In a log: every 10 % with ``-v``; else when a step outside the epochs starts and ends (the
        epoch lines tell the rest) and at most every LOG_INTERVAL_S while a long step runs."""
        tenth = int(10 * event.done / max(event.total, 1)) if self.verbosity >= VERBOSE else None
        step = (event.label, event.stage, event.epoch, tenth)
        new_step, self._last_step = step != self._last_step, step
        if self.verbosity >= VERBOSE:
            return new_step
        now = self.clock()
        bound = event.epoch is None and (new_step or event.done >= event.total)
        if bound or now - self._last_log >= LOG_INTERVAL_S:
            self._last_log = now
            return True
        return False

    def _columns(self) -> int:
        """The terminal's width: $COLUMNS, else the stream's console, else 80."""
        if os.environ.get("COLUMNS", "").isdigit():
            return int(os.environ["COLUMNS"])
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return DEFAULT_COLUMNS

    def _end_bar(self) -> None:
        if self._drawn_length:
            self.stream.write("\n")
            self._drawn_length = 0

    def _line(self, event: ProgressEvent, width: int | None) -> str:
        """The progress line, fitted into ``width`` characters: the bar shrinks (or goes), then the
        label loses its start, then the line its end."""
        fraction = min(1.0, event.done / event.total) if event.total else 1.0
        head = [event.label] if event.label else []
        if event.epoch is not None:
            head.append(f"epoch {event.epoch}/{event.epochs}")
        tail = [f"{event.done}/{event.total} {event.stage}"]
        if event.loss is not None:
            tail.append(f"loss {event.loss:.4f}")
        if event.rate is not None:
            tail.append(f"{event.rate:.2f} {event.rate_unit}")
        tail.append(f"ETA {format_duration(event.eta_s)}")
        bar_width = BAR_WIDTH
        if width is not None:
            bar_width = min(BAR_WIDTH, width - len("  ".join([*head, *tail])) - 3)
            if bar_width < MIN_BAR_WIDTH:
                bar_width = 0
        if bar_width:
            filled = int(bar_width * fraction)
            tail[0] = self.blocks[0] * filled + self.blocks[1] * (bar_width - filled) + " " + tail[0]
        line = "  ".join([*head, *tail])
        if width is None or len(line) <= width:
            return line
        if event.label:
            cut = len(line) - width + 3
            head[0] = "..." + event.label[cut:] if cut < len(event.label) - 8 else ""
            line = "  ".join(part for part in (*head, *tail) if part)
        return line[:width]
