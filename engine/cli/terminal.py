"""A Reporter that draws a progress bar and per-epoch lines on the terminal.

The bar is redrawn in place on a TTY at most ten times a second; when output goes to a file or a
CI log it prints a plain line every 10 % instead, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

from engine.progress import EpochEvent, ProgressEvent

BAR_WIDTH = 24
REDRAW_INTERVAL_S = 0.1


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

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty()
        self._last_draw = 0.0
        self._last_step: tuple[object, ...] = ()
        self._bar_open = False

    def on_progress(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        finished = event.done >= event.total
        if self.interactive:
            if not finished and now - self._last_draw < REDRAW_INTERVAL_S:
                return
            self._last_draw = now
            self.stream.write("\r" + self._bar(event) + "\x1b[K")
            self._bar_open = True
            if finished:
                self._end_bar()
        else:
            step = (event.label, event.stage, event.epoch, int(10 * event.done / max(event.total, 1)))
            if step != self._last_step:
                self._last_step = step
                self.stream.write(self._bar(event) + "\n")
        self.stream.flush()

    def on_epoch(self, event: EpochEvent) -> None:
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
        self._end_bar()
        prefix = "warning: " if level == "warning" else ""
        self.stream.write(f"{prefix}{text}\n")
        self.stream.flush()

    def _end_bar(self) -> None:
        if self._bar_open:
            self.stream.write("\n")
            self._bar_open = False

    def _bar(self, event: ProgressEvent) -> str:
        fraction = min(1.0, event.done / event.total) if event.total else 1.0
        filled = int(BAR_WIDTH * fraction)
        bar = "█" * filled + "·" * (BAR_WIDTH - filled)
        parts = []
        if event.label:
            parts.append(event.label)
        if event.epoch is not None:
            parts.append(f"epoch {event.epoch}/{event.epochs}")
        parts.append(f"{bar} {event.done}/{event.total} {event.stage}")
        if event.loss is not None:
            parts.append(f"loss {event.loss:.4f}")
        if event.rate is not None:
            parts.append(f"{event.rate:.2f} {event.rate_unit}")
        parts.append(f"ETA {format_duration(event.eta_s)}")
        return "  ".join(parts)
