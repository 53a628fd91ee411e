"""Short background reads as asyncio tasks on the qasync loop, with their references kept.

Metadata reads, folder scans and preview reads take milliseconds to seconds of disk time. They run
as coroutines that ``await`` a small thread pool, so the code that asks for them reads top to
bottom and the GUI thread never waits. Every task is kept in a set until it ends: qasync 0.28 with
PySide6 ≥ 6.8 crashes when a running task is garbage-collected, and a kept task can be cancelled
and awaited when the window closes.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
READ_WORKERS = 2


def report_to_excepthook(error: BaseException) -> None:
    """Hands an unexpected task failure to ``sys.excepthook``, which logs it and tells the user."""
    sys.excepthook(type(error), error, error.__traceback__)


class BackgroundTasks:
    """Owns the running read tasks of one window and the threads they read on.

    Args:
        on_error: called with any exception a task ends with (cancellation excepted); expected
            failures, such as a file that is not a raster, are handled inside the coroutines.
    """

    def __init__(self, on_error: Callable[[BaseException], None] = report_to_excepthook) -> None:
        self._on_error = on_error
        self._tasks: set[asyncio.Task[Any]] = set()
        self._executor = ThreadPoolExecutor(max_workers=READ_WORKERS, thread_name_prefix="modelai-read")
        self._closed = False

    @property
    def running(self) -> int:
        """How many tasks have not finished yet."""
        return len(self._tasks)

    def start(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """Schedules a coroutine on the running loop and keeps it until it ends."""
        if self._closed:
            coroutine.close()
            raise RuntimeError("BackgroundTasks is closed; no new task can start.")
        task = asyncio.ensure_future(coroutine)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def run_blocking(self, function: Callable[..., T], *args: Any) -> T:
        """Runs a blocking call on a read thread and returns its result on the loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(function, *args))

    async def wait_idle(self) -> None:
        """Returns once every task, including tasks started meanwhile, has finished."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def aclose(self) -> None:
        """Cancels every task, waits for them to unwind, then stops the read threads."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await self.wait_idle()
        self._executor.shutdown(wait=True, cancel_futures=True)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self._on_error(error)
