"""Fixtures for window tests: a qasync loop, windows in a temporary data folder, a leaked-thread guard.

Scenarios run as coroutines on the qasync loop (``run(scenario())``): a coroutine started by a
click only advances while that loop runs, so a test awaits ``until(condition)`` instead of calling
``qtbot.waitUntil``. Every test fails if it leaves a QThread or a Python thread running (napari's
``_dangling_qthreads``), because a leaked reader thread outlives its window in the real app too.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import traceback
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qasync
import shiboken6
from PySide6.QtCore import QThread
from PySide6.QtWidgets import QApplication
from rasterio.transform import from_origin

from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.gui_thread_gc import GuiThreadCollector
from modelai_desktop.main_window import MainWindow
from modelai_desktop.settings import AppSettings
from tests.rasters import write_raster as write_raster_file

SCENARIO_TIMEOUT_S = 20.0
THREAD_STOP_S = 5.0


@pytest.fixture(scope="session", autouse=True)
def _garbage_collected_on_the_gui_thread(qapp: QApplication) -> Iterator[None]:
    """As in the app (`modelai_desktop.gui_thread_gc`): a job thread collecting garbage that holds
    Qt objects crashed a test process."""
    collector = GuiThreadCollector(qapp)
    yield
    collector.stop()


@pytest.fixture(autouse=True)
def _no_dangling_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails the test if a QThread it started, or a Python thread it created, is still running."""
    started: weakref.WeakKeyDictionary[QThread, str] = weakref.WeakKeyDictionary()
    original_start = QThread.start

    def start_and_record(self: QThread, *args: Any) -> None:
        started[self] = "".join(traceback.format_stack(limit=8))
        original_start(self, *args)

    monkeypatch.setattr(QThread, "start", start_and_record)
    before = set(threading.enumerate())
    yield
    # Ended workers and their QThread wrappers refer to each other: collect them now, inside this
    # test, rather than at a random later moment inside Qt's event processing.
    gc.collect()
    # A finished worker's QThread may already be deleted (deleteLater): it is not running.
    running = [
        (thread, where)
        for thread, where in list(started.items())
        if shiboken6.isValid(thread) and thread.isRunning()
    ]
    for thread, _ in running:
        thread.quit()
        thread.wait(int(THREAD_STOP_S * 1000))
    deadline = time.monotonic() + THREAD_STOP_S
    # A _DummyThread is Python's stand-in for a thread it did not start (a QThread that ran Python
    # code); it never ends, and the QThread itself is checked above.
    leaked = [
        thread
        for thread in threading.enumerate()
        if thread not in before and not isinstance(thread, threading._DummyThread)
    ]
    for thread in leaked:
        thread.join(max(0.0, deadline - time.monotonic()))
    problems = [f"QThread started at:\n{where}" for _, where in running]
    problems += [f"Python thread {thread.name} was left running" for thread in leaked if thread.is_alive()]
    if problems:
        pytest.fail("A test left threads running:\n" + "\n".join(problems))


@pytest.fixture
def qt_loop(qapp: QApplication) -> Iterator[qasync.QEventLoop]:
    """A qasync loop over the test QApplication, set as the asyncio loop for the test."""
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture
def run(qt_loop: qasync.QEventLoop) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Runs a scenario coroutine on the qasync loop (with a timeout) and returns its result."""

    def run_scenario(scenario: Coroutine[Any, Any, Any]) -> Any:
        return qt_loop.run_until_complete(asyncio.wait_for(scenario, SCENARIO_TIMEOUT_S))

    return run_scenario


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(condition, what)``: lets the loop run until ``condition()`` is true."""

    async def wait(
        condition: Callable[[], object], what: str = "the condition", timeout: float = 10.0
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"Timed out after {timeout} s waiting for {what}")
            await asyncio.sleep(0.02)

    return wait


@pytest.fixture
def tasks(qt_loop: qasync.QEventLoop) -> Iterator[BackgroundTasks]:
    """Background tasks for a widget tested alone; closed (threads joined) after the test."""
    background = BackgroundTasks()
    yield background
    qt_loop.run_until_complete(background.aclose())


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return AppSettings(tmp_path / "settings" / "desktop-settings.ini")


@pytest.fixture
def window(
    qtbot: Any, qt_loop: qasync.QEventLoop, settings: AppSettings, tmp_path: Path
) -> Iterator[MainWindow]:
    """The main window with settings and logs in the test's temporary folder."""
    main_window = MainWindow(settings, tmp_path / "logs")
    qtbot.addWidget(main_window)
    yield main_window
    qt_loop.run_until_complete(main_window.tasks.aclose())


@pytest.fixture
def write_raster(tmp_path: Path) -> Callable[..., Path]:
    """Writes a small georeferenced GeoTIFF (bands, rows, cols) and returns its path."""

    def write(name: str, data: np.ndarray, nodata: float | None = None, **profile: Any) -> Path:
        transform = from_origin(500000.0, 4500000.0, 10.0, 10.0)
        return write_raster_file(tmp_path / name, data, nodata, **{"transform": transform, **profile})

    return write
