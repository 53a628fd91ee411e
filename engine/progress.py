"""Progress events, the Reporter protocol and the cancel token.

One progress API, two faces: the command line adapts a Reporter to a terminal progress bar and the
window adapts it to queued Qt signals. The engine only calls these methods and checks the token
between batches or tiles, so it never knows which face is listening.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from engine.errors import JobCancelled

if TYPE_CHECKING:  # numpy only annotates samples here; ``modelai --help`` need not load it
    import numpy as np


@dataclass(frozen=True)
class ProgressEvent:
    """Where a long step stands: ``done`` of ``total`` units (batches, tiles, windows)."""

    stage: str
    done: int
    total: int
    epoch: int | None = None
    epochs: int | None = None
    loss: float | None = None
    rate: float | None = None
    rate_unit: str = ""
    eta_s: float | None = None
    label: str = ""


@dataclass(frozen=True)
class EpochEvent:
    """The end of one training epoch, with everything a loss curve or a job history needs.

    ``metrics`` is flat (``mean_iou``, ``iou/road``, ``threshold``...) so it stores as rows and plots
    without knowing the task. ``sample`` optionally carries small arrays (``image`` as HxWx3 uint8,
    ``target`` and ``prediction`` as HxW) for a live preview of what the model sees.
    """

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    metrics: dict[str, float]
    monitor: str
    is_best: bool
    lr: float
    duration_s: float
    sample: dict[str, np.ndarray] | None = field(default=None, compare=False)


class Reporter(Protocol):
    """Receives what a job does. Implementations must be cheap: they run on the job's thread."""

    def on_progress(self, event: ProgressEvent) -> None: ...

    def on_epoch(self, event: EpochEvent) -> None: ...

    def on_message(self, level: str, text: str) -> None:
        """``level`` is ``info`` or ``warning``; warnings are things the user should read."""


class NullReporter:
    """A Reporter that ignores everything, for callers that only want the result."""

    def on_progress(self, event: ProgressEvent) -> None:
        return None

    def on_epoch(self, event: EpochEvent) -> None:
        return None

    def on_message(self, level: str, text: str) -> None:
        return None


class RecordingReporter:
    """A Reporter that keeps every event, for tests and for summaries written after a job."""

    def __init__(self) -> None:
        self.progress: list[ProgressEvent] = []
        self.epochs: list[EpochEvent] = []
        self.messages: list[tuple[str, str]] = []

    def on_progress(self, event: ProgressEvent) -> None:
        self.progress.append(event)

    def on_epoch(self, event: EpochEvent) -> None:
        self.epochs.append(event)

    def on_message(self, level: str, text: str) -> None:
        self.messages.append((level, text))

    def warnings(self) -> list[str]:
        return [text for level, text in self.messages if level == "warning"]


class CancelToken:
    """A thread-safe flag the engine checks between steps; setting it never interrupts a step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self, what: str = "The job") -> None:
        if self._event.is_set():
            raise JobCancelled(f"{what} was cancelled.")
