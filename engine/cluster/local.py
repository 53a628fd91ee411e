"""``--cluster local:N``: N worker processes on this machine, for one run.

Every worker runs one raster at a time (one Dask thread) and shares the machine's cores with the
others through torch's thread count. The workers ignore Ctrl-C: the terminal sends it to the
whole process group, and the run itself stops them cleanly (`engine.cluster.archive`) instead of
having them die mid-raster.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from distributed import Client, LocalCluster, Worker
from distributed.diagnostics.plugin import WorkerPlugin


class IgnoreInterrupts(WorkerPlugin):
    """Makes a worker process (and any that replaces it) ignore SIGINT."""

    def setup(self, worker: Worker) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def torch_threads_per_worker(workers: int) -> int:
    """The cores of this process divided among the workers (at least one each)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // workers)


@contextmanager
def local_client(workers: int) -> Iterator[Client]:
    """A client of a new cluster of ``workers`` processes, closed with it."""
    # Its web server (always started) on a free port: a second cluster on 8787 would warn.
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(IgnoreInterrupts())
        yield client
