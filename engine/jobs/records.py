"""What the job store holds: job statuses, record types, the schema's migrations, process checks.

Kept apart from :mod:`engine.jobs.store` (the store's operations) so that the views and the runner can
name statuses and read records without caring how they are written, and so that the schema's
history reads in one place.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

from engine.errors import JobStoreError

HOST = socket.gethostname()
UNKNOWN = "UNKNOWN"


class StoredValue(StrEnum):
    """A text column with a fixed set of values, which a newer ModelAI may extend."""

    @classmethod
    def read(cls, text: str) -> Self:
        """The stored value; one this version does not know becomes a stand-in member named
        UNKNOWN that shows as the stored text, so a view lists a newer store's rows as they are."""
        try:
            return cls(text)
        except ValueError:
            stand_in = str.__new__(cls, text)
            stand_in._name_, stand_in._value_ = UNKNOWN, text
            return stand_in


class JobStatus(StoredValue):
    """Where a job is in its life; the last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class ArtifactKind(StoredValue):
    """What a file written by a job is, so the views know how to show or reuse it."""

    MODEL = "model"
    CLASSES = "classes"
    PROBABILITIES = "probabilities"
    ANOMALY = "anomaly"
    ANOMALY_MASK = "anomaly_mask"
    SUMMARY = "summary"
    STYLE = "style"
    CHECKPOINT = "checkpoint"
    POLYGONS = "polygons"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored; times are UTC, ``pid`` and ``host`` name the process that owns it.

    The owner is the process that queued the job and then runs it, so a queued job whose owner died
    is told apart from one still waiting for its turn.
    """

    id: int
    kind: str
    status: JobStatus
    spec: dict[str, Any]
    created: datetime
    started: datetime | None
    finished: datetime | None
    duration_s: float | None
    result: dict[str, Any] | None
    error_message: str | None
    error_detail: str | None
    device: str | None
    versions: dict[str, str]
    checkpoint_path: Path | None
    parent_job_id: int | None
    cancel_requested: bool
    pid: int | None
    host: str | None
    pid_started: str | None = None


@dataclass(frozen=True, slots=True)
class EpochRecord:
    """The end of one training epoch; ``metrics`` is flat (``mean_iou``, ``iou/road``...)."""

    job_id: int
    epoch: int
    train_loss: float | None
    val_loss: float | None
    metrics: dict[str, float]
    lr: float | None
    duration_s: float | None


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A file a job wrote, with its size at the time it was recorded."""

    job_id: int
    kind: ArtifactKind
    path: Path
    size_bytes: int
    created: datetime


def _migrate_to_v1(conn: sqlite3.Connection) -> None:
    """The first released schema: jobs, their epochs and their output files."""
    conn.execute(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,"
        " status TEXT NOT NULL, spec_json TEXT NOT NULL, created TEXT NOT NULL, started TEXT,"
        " finished TEXT, duration_s REAL, result_json TEXT, error_message TEXT, error_detail TEXT,"
        " parent_job_id INTEGER REFERENCES jobs(id))"
    )
    conn.execute("CREATE INDEX jobs_by_status ON jobs (status, id)")
    conn.execute(
        "CREATE TABLE epochs (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
        " epoch INTEGER NOT NULL, train_loss REAL, val_loss REAL, metrics_json TEXT NOT NULL DEFAULT '{}',"
        " lr REAL, duration_s REAL, PRIMARY KEY (job_id, epoch))"
    )
    conn.execute(
        "CREATE TABLE artifacts (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
        " kind TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, created TEXT NOT NULL,"
        " PRIMARY KEY (job_id, path))"
    )


def _migrate_to_v2(conn: sqlite3.Connection) -> None:
    """What crash recovery, resume and cancel need: where a job runs, its checkpoint, a cancel flag."""
    for column in (
        "device TEXT",
        "versions_json TEXT NOT NULL DEFAULT '{}'",
        "checkpoint_path TEXT",
        "pid INTEGER",
        "host TEXT",
        "cancel_requested INTEGER NOT NULL DEFAULT 0",
    ):
        conn.execute(f"ALTER TABLE jobs ADD COLUMN {column}")


def _migrate_to_v3(conn: sqlite3.Connection) -> None:
    """When the owning process started (see :func:`process_started`), so a reused pid is told apart."""
    conn.execute("ALTER TABLE jobs ADD COLUMN pid_started TEXT")


# MIGRATIONS[n] takes a store from version n to n + 1. Never edit a released step: append a new one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _migrate_to_v1,
    _migrate_to_v2,
    _migrate_to_v3,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, path: Path, read_only: bool = False) -> None:
    """Bring a store opened in a write transaction up to :data:`SCHEMA_VERSION`; ``read_only``
    only checks that this version can read it (a newer store can be read: migrations only add).

    Raises:
        JobStoreError: the store comes from a newer ModelAI (unless read-only), is older than this
            one and read-only, or the file is another program's database.
    """
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if read_only:
        if version < SCHEMA_VERSION:
            raise JobStoreError(
                f"{path} is a job store of version {version}: open it for writing to update it"
            )
        return
    if version > SCHEMA_VERSION:
        raise JobStoreError(
            f"{path} was written by a newer ModelAI (job store version {version}, this one"
            f" reads up to {SCHEMA_VERSION}): update ModelAI, or choose another --home"
        )
    if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        raise JobStoreError(
            f"{path} is an SQLite database of another program, not a ModelAI job store:"
            " move it away or choose another --home"
        )
    for step in MIGRATIONS[version:]:
        step(conn)
    # Written even when unchanged: the write proves now that the store is writable, rather
    # than at the first epoch of a long job.
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


JOB_COLUMNS = (
    "id, kind, status, spec_json, created, started, finished, duration_s, result_json, error_message,"
    " error_detail, device, versions_json, checkpoint_path, parent_job_id, cancel_requested, pid, host,"
    " pid_started"
)


def owner_alive(row: sqlite3.Row) -> bool:
    """Whether the process that owns a job's row still runs (the same process, not a reused pid)."""
    return row["pid"] is not None and process_alive(row["pid"], row["pid_started"])


def process_alive(pid: int, started: str | None = None) -> bool:
    """Tell whether a process of this host still runs, to tell a running job from a crashed one.

    ``started`` is :func:`process_started` of the process when the job was recorded: a process
    that now holds the same pid but started at another time is another program (the system reused
    the pid of a crashed job, which Windows does soon), so the job's process is gone.
    """
    if pid <= 0:
        return False
    if os.name == "nt":
        alive = _windows_process_alive(pid)
    else:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        alive = True
    return alive and (started is None or process_started(pid) in (started, None))


def process_started(pid: int) -> str | None:
    """When a process started, as an opaque text that names it together with its pid; None where the
    system does not tell (macOS, a process gone), and then the pid alone identifies it."""
    if os.name == "nt":
        return _windows_process_started(pid)
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    # Field 22, the start in clock ticks after boot; the name (field 2) may hold spaces and ")".
    return f"{boot}:{stat.rsplit(')', 1)[1].split()[19]}"


def _windows_process_started(pid: int) -> str | None:
    """The creation time that Windows keeps for a process, in 100 ns units."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return None
    try:
        times = [wintypes.FILETIME() for _ in range(4)]
        if not kernel32.GetProcessTimes(handle, *(ctypes.byref(time) for time in times)):
            return None
        return str(times[0].dwHighDateTime << 32 | times[0].dwLowDateTime)
    finally:
        kernel32.CloseHandle(handle)


def _windows_process_alive(pid: int) -> bool:
    """Windows has no signal 0 (``os.kill`` would terminate the process), so ask the kernel."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.OpenProcess.restype = wintypes.HANDLE
    query_limited_information, access_denied, still_active = 0x1000, 5, 259
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return ctypes.get_last_error() == access_denied
    try:
        exit_code = wintypes.DWORD()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(exit_code))) and (
            exit_code.value == still_active
        )
    finally:
        kernel32.CloseHandle(handle)


def utc_now() -> datetime:
    """The current time in UTC, the only time zone the store holds."""
    return datetime.now(UTC)


def time_text(moment: datetime) -> str:
    """A time as stored: ISO 8601 with milliseconds, which sorts as text."""
    return moment.isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> datetime | None:
    """Read back a stored time; empty means the moment has not come (not started, not finished)."""
    return datetime.fromisoformat(text) if text else None


def job_from_row(row: sqlite3.Row) -> JobRecord:
    """Build a record from a row selected with :data:`JOB_COLUMNS`."""
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        status=JobStatus.read(row["status"]),
        spec=json.loads(row["spec_json"]),
        created=datetime.fromisoformat(row["created"]),
        started=parse_time(row["started"]),
        finished=parse_time(row["finished"]),
        duration_s=row["duration_s"],
        result=json.loads(row["result_json"]) if row["result_json"] else None,
        error_message=row["error_message"],
        error_detail=row["error_detail"],
        device=row["device"],
        versions=json.loads(row["versions_json"]),
        checkpoint_path=Path(row["checkpoint_path"]) if row["checkpoint_path"] else None,
        parent_job_id=row["parent_job_id"],
        cancel_requested=bool(row["cancel_requested"]),
        pid=row["pid"],
        host=row["host"],
        pid_started=row["pid_started"],
    )


def epoch_from_row(row: sqlite3.Row) -> EpochRecord:
    """Build a record from a row of the ``epochs`` table."""
    return EpochRecord(
        job_id=row["job_id"],
        epoch=row["epoch"],
        train_loss=row["train_loss"],
        val_loss=row["val_loss"],
        metrics=json.loads(row["metrics_json"]),
        lr=row["lr"],
        duration_s=row["duration_s"],
    )


def artifact_from_row(row: sqlite3.Row) -> ArtifactRecord:
    """Build a record from a row of the ``artifacts`` table."""
    return ArtifactRecord(
        job_id=row["job_id"],
        kind=ArtifactKind.read(row["kind"]),
        path=Path(row["path"]),
        size_bytes=row["size_bytes"],
        created=datetime.fromisoformat(row["created"]),
    )
