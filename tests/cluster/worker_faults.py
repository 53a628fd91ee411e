"""A fault for the cluster tests, loaded by the workers: a Dask worker plugin that kills its own
worker process (SIGKILL, as the out-of-memory killer would) once, in the middle of one raster or
just after it."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from distributed import Worker
from distributed.diagnostics.plugin import WorkerPlugin

WAIT_FOR_OUTPUT_S = 30.0
WRITING, DONE = "writing", "done"


class KillWorker(WorkerPlugin):
    """Kills the worker that runs the task of ``raster_name``, once in the whole cluster (``marker``
    records the pid that died and when; the raster's retry runs undisturbed).

    ``when="writing"``: as soon as the raster's first output exists under its temporary name in
    ``output_dir``, so a half-written raster is left behind. ``when="done"``: the moment the task
    has finished, with its outputs complete but its result not yet sent to the client.
    """

    name = "modelai-test-kill-worker"

    def __init__(self, raster_name: str, output_dir: Path, marker: Path, when: str) -> None:
        self.raster_name = raster_name
        self.output_dir = output_dir
        self.marker = marker
        self.when = when

    def setup(self, worker: Worker) -> None:
        return None

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if not str(key).endswith(f"-{self.raster_name}"):
            return
        if self.when == WRITING and finish == "executing" and self._first():
            threading.Thread(target=self._kill_when_writing, daemon=True).start()
        elif self.when == DONE and finish == "memory" and self._first():
            self._kill("outputs complete")

    def _first(self) -> bool:
        try:
            with self.marker.open("x") as marker:
                marker.write(f"{os.getpid()}\n")
        except FileExistsError:
            return False
        return True

    def _kill_when_writing(self) -> None:
        pattern = f".{Path(self.raster_name).stem}_*.tmp"
        deadline = time.monotonic() + WAIT_FOR_OUTPUT_S
        while not any(self.output_dir.glob(pattern)) and time.monotonic() < deadline:
            time.sleep(0.001)
        self._kill("temporary output present" if any(self.output_dir.glob(pattern)) else "no output yet")

    def _kill(self, state: str) -> None:
        with self.marker.open("a") as marker:
            marker.write(f"{state}\n")
        os.kill(os.getpid(), signal.SIGKILL)
