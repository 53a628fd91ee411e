"""A fault for the cluster tests, loaded by the workers: a Dask worker plugin that kills its own
worker process (SIGKILL, as the out-of-memory killer would) once, in the middle of one raster."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

from distributed import Worker
from distributed.diagnostics.plugin import WorkerPlugin

WAIT_FOR_OUTPUT_S = 30.0


class KillMidRaster(WorkerPlugin):
    """When a worker starts the task of ``raster_name``, it waits until that raster's first output
    exists under its temporary name in ``output_dir`` and kills itself: a half-written raster.

    ``marker`` makes it happen once in the whole cluster (the raster's retry runs undisturbed) and
    records the pid that died and whether it died with the temporary file there.
    """

    name = "modelai-test-kill-mid-raster"

    def __init__(self, raster_name: str, output_dir: Path, marker: Path) -> None:
        self.raster_name = raster_name
        self.output_dir = output_dir
        self.marker = marker

    def setup(self, worker: Worker) -> None:
        return None

    def transition(self, key: object, start: str, finish: str, **kwargs: object) -> None:
        if finish != "executing" or not str(key).endswith(f"-{self.raster_name}"):
            return
        try:
            with self.marker.open("x") as marker:
                marker.write(f"{os.getpid()}\n")
        except FileExistsError:
            return
        threading.Thread(target=self._kill_when_writing, daemon=True).start()

    def _kill_when_writing(self) -> None:
        pattern = f".{Path(self.raster_name).stem}_*.tmp"
        deadline = time.monotonic() + WAIT_FOR_OUTPUT_S
        while not any(self.output_dir.glob(pattern)) and time.monotonic() < deadline:
            time.sleep(0.001)
        with self.marker.open("a") as marker:
            marker.write("temporary output present\n" if any(self.output_dir.glob(pattern)) else "none\n")
        os.kill(os.getpid(), signal.SIGKILL)
