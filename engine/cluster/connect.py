"""Where a cluster run goes (``--cluster``), and the Dask client that takes it there.

Three forms: ``local:N`` starts N worker processes on this machine for the run and stops them after
it; ``tcp://HOST:PORT`` (any address Dask's ``Client`` takes) and a scheduler file (the JSON that
``dask scheduler --scheduler-file`` writes) join a cluster that outlives the run. Dask is imported
here and only here, when a cluster run starts: ``modelai --help`` and local runs never load it, and
an installation without it (the desktop app's) says which extra to install.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from engine.errors import ClusterError

if TYPE_CHECKING:
    from distributed import Client

INSTALL_HINT = 'pip install "modelai-desktop[cluster]"'
LOCAL_PREFIX = "local:"
# Reaching a scheduler over a network; Dask's own default (30 s) would make a typo wait longer.
CONNECT_TIMEOUT_S = 20.0
# A cluster whose workers are still starting (a batch system's queue) gets this long to show one.
WORKER_WAIT_S = 120.0
ADDRESS_HELP = "give local:N (N worker processes here), tcp://HOST:PORT or a scheduler file (.json)"


@dataclass(frozen=True)
class ClusterAddress:
    """A parsed ``--cluster`` value: exactly one of its three forms is set."""

    text: str
    local_workers: int | None = None
    scheduler_address: str | None = None
    scheduler_file: Path | None = None


def parse_address(text: str) -> ClusterAddress:
    """Reads a ``--cluster`` value.

    Raises:
        ClusterError: the value has none of the three forms, ``local:N`` has no positive N, or the
            scheduler file does not exist.
    """
    if text.startswith(LOCAL_PREFIX):
        count = text.removeprefix(LOCAL_PREFIX)
        if not count.isdigit() or int(count) < 1:
            raise ClusterError(f"--cluster {text}: local:N needs a number of worker processes, e.g. local:2.")
        return ClusterAddress(text, local_workers=int(count))
    if "://" in text:
        return ClusterAddress(text, scheduler_address=text)
    if text.lower().endswith(".json"):
        path = Path(text).absolute()
        if not path.is_file():
            raise ClusterError(
                f"--cluster {text}: no scheduler file there. Start the scheduler with "
                f"`dask scheduler --scheduler-file {text}`, or give its address (tcp://HOST:PORT)."
            )
        return ClusterAddress(text, scheduler_file=path)
    raise ClusterError(f"--cluster {text}: {ADDRESS_HELP}.")


def import_distributed() -> ModuleType:
    """Dask's ``distributed`` package, or a ClusterError that names the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ClusterError(
            f"--cluster needs Dask's distributed scheduler, which is not installed here ({exc}): "
            f"{INSTALL_HINT}"
        ) from exc
    return distributed


@contextmanager
def open_client(address: ClusterAddress) -> Iterator[Client]:
    """A Dask client with at least one worker; a local cluster is started for it and stopped after.

    Raises:
        ClusterError: Dask is missing, the scheduler cannot be reached, or no worker joined in time.
    """
    distributed = import_distributed()
    if address.local_workers is not None:
        from engine.cluster.local import local_client

        with local_client(address.local_workers) as client:
            yield client
        return
    try:
        client = distributed.Client(
            address.scheduler_address,
            scheduler_file=None if address.scheduler_file is None else os.fspath(address.scheduler_file),
            timeout=CONNECT_TIMEOUT_S,
        )
    except (OSError, TimeoutError, ValueError) as exc:
        raise ClusterError(
            f"--cluster {address.text}: cannot reach the Dask scheduler ({exc}). Check that "
            "`dask scheduler` runs there and that this machine can reach its port."
        ) from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError as exc:
            raise ClusterError(
                f"--cluster {address.text}: the scheduler has no workers after {WORKER_WAIT_S:.0f} s. "
                f"Start some with `dask worker {client.scheduler.address}` on machines that see the rasters."
            ) from exc
        yield client
