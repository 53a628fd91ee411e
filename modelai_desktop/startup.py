"""The first seconds: a window at once, the engine's heavy imports on a thread, then the main window.

Importing torch (which the engine's runner, inference and training pull in) takes seconds, more on
a busy or cold machine. The main window's pages import the engine, so building it waits for those
imports; a small "starting" window appears before them, and they run on a thread so that window
stays responsive. The times of each phase are logged, so a slow start says where its time went.
"""

from __future__ import annotations

import importlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QProgressBar, QVBoxLayout, QWidget

log = logging.getLogger(__name__)

APP_NAME = "ModelAI Desktop"
# The engine modules the pages import, heaviest first (torch through the runner and inference).
ENGINE_MODULES = ("torch", "rasterio", "engine.jobs.runner", "engine.inference.predict", "engine.selftest")


class StartupClock:
    """Seconds since the app's module started to load, per named phase, for the log."""

    def __init__(self, started: float) -> None:
        self._started = started
        self.marks: dict[str, float] = {}

    def mark(self, phase: str) -> float:
        """Records (and returns) the seconds from start to the end of ``phase``."""
        self.marks[phase] = time.perf_counter() - self._started
        return self.marks[phase]

    def summary(self) -> str:
        """``first window 0.9 s, engine loaded 6.1 s, main window 7.0 s``."""
        return ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in self.marks.items())


class StartingWindow(QWidget):
    """What shows while the engine loads: the app's name, what it does now, a busy bar."""

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.setWindowTitle(APP_NAME)
        title = QLabel(f"<b>{APP_NAME}</b>")
        title.setObjectName("sectionTitle")
        self.status_label = QLabel("Loading the deep-learning engine (PyTorch)…")
        bar = QProgressBar()
        bar.setRange(0, 0)
        column = QVBoxLayout(self)
        column.setContentsMargins(24, 20, 24, 20)
        column.addWidget(title)
        column.addWidget(self.status_label)
        column.addWidget(bar)
        self.setMinimumWidth(380)


def load_engine() -> None:
    """Imports the engine's heavy modules (call it on a thread: it takes seconds)."""
    for name in ENGINE_MODULES:
        importlib.import_module(name)


async def load_engine_off_thread() -> None:
    """Runs :func:`load_engine` on its own thread and returns once it is done, leaving no thread."""
    import asyncio

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="modelai-import") as executor:
        await asyncio.get_running_loop().run_in_executor(executor, load_engine)
