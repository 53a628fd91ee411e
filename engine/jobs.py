"""The local job store: every training and inference job, its per-epoch metrics and its outputs.

One SQLite file (``jobs.sqlite`` in the data folder) is the history the window, the command line and
a crashed run's next start all read. It runs in WAL mode so readers never block the writer, every
write is one short ``BEGIN IMMEDIATE`` transaction so several processes can share it, and its schema
carries ``PRAGMA user_version`` with forward migrations so an updated app opens an older store.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine.errors import JobStoreError

HOST = socket.gethostname()


class JobStatus(StrEnum):
    """Where a job is in its life; the last four are final."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


class ArtifactKind(StrEnum):
    """What a file written by a job is, so the views know how to show or reuse it."""

    MODEL = "model"
    CLASSES = "classes"
    PROBABILITIES = "probabilities"
    ANOMALY = "anomaly"
    ANOMALY_MASK = "anomaly_mask"
    SUMMARY = "summary"
    CHECKPOINT = "checkpoint"


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored; times are UTC, ``pid`` and ``host`` name the process that ran it."""

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


# MIGRATIONS[n] takes a store from version n to n + 1. Never edit a released step: append a new one.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_to_v1, _migrate_to_v2)
SCHEMA_VERSION = len(MIGRATIONS)

_JOB_COLUMNS = (
    "id, kind, status, spec_json, created, started, finished, duration_s, result_json, error_message,"
    " error_detail, device, versions_json, checkpoint_path, parent_job_id, cancel_requested, pid, host"
)


def process_alive(pid: int) -> bool:
    """Tell whether a process of this host still runs, to tell a running job from a crashed one."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _now() -> datetime:
    return datetime.now(UTC)


def _time_text(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _job_from_row(row: sqlite3.Row) -> JobRecord:
    return JobRecord(
        id=row["id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        spec=json.loads(row["spec_json"]),
        created=datetime.fromisoformat(row["created"]),
        started=_parse_time(row["started"]),
        finished=_parse_time(row["finished"]),
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
    )


class JobStore:
    """The job store of one data folder; one connection, shared safely by the GUI and a worker thread.

    Args:
        path: the SQLite file (see :func:`engine.paths.jobs_db_path`); created when missing.
        busy_timeout_s: how long a write waits for another process's write before giving up.

    Raises:
        JobStoreError: the file is not a job store, is read-only, or comes from a newer ModelAI.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        self._conn.row_factory = sqlite3.Row
        try:
            self._open()
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> None:
        try:
            # NORMAL is crash-safe in WAL mode; a power cut may only lose the last few commits.
            for pragma in ("journal_mode = WAL", "synchronous = NORMAL", "foreign_keys = ON"):
                self._conn.execute(f"PRAGMA {pragma}")
        except sqlite3.Error as exc:
            raise self._error(exc) from exc
        with self._write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JobStoreError(
                    f"{self.path} was written by a newer ModelAI (job store version {version}, this one"
                    f" reads up to {SCHEMA_VERSION}): update ModelAI, or choose another --home"
                )
            if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise JobStoreError(
                    f"{self.path} is an SQLite database of another program, not a ModelAI job store:"
                    " move it away or choose another --home"
                )
            for migrate in MIGRATIONS[version:]:
                migrate(conn)
            # Written even when unchanged: the write proves now that the store is writable, rather
            # than at the first epoch of a long job.
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _error(self, exc: sqlite3.Error) -> JobStoreError:
        """Turn an SQLite error into a message that names the file and what to do about it."""
        code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
        where = self.path
        messages = {
            sqlite3.SQLITE_NOTADB: f"{where} is not a ModelAI job store (not an SQLite database):"
            " move it away or choose another --home",
            sqlite3.SQLITE_READONLY: f"the job store {where} or its folder is read-only: make both"
            " writable, or choose another --home",
            sqlite3.SQLITE_CANTOPEN: f"cannot open the job store {where}: check that its folder exists"
            " and is writable, or choose another --home",
            sqlite3.SQLITE_BUSY: f"the job store {where} stayed locked by another ModelAI process:"
            " wait for it to finish writing and try again",
            sqlite3.SQLITE_FULL: f"the disk holding the job store {where} is full: free some space",
            sqlite3.SQLITE_CORRUPT: f"the job store {where} is damaged: move it away (ModelAI starts a"
            " new one) or choose another --home",
        }
        return JobStoreError(messages.get(code, f"cannot use the job store {where}: {exc}"))

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction that takes the write lock first, so it never deadlocks."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc) from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _unknown(self, job_id: int) -> JobStoreError:
        return JobStoreError(f"no job {job_id} in {self.path}; `modelai jobs list` shows the ids")

    def _job_row(self, conn: sqlite3.Connection, job_id: int) -> sqlite3.Row:
        row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise self._unknown(job_id)
        return row

    def create_job(
        self,
        kind: str,
        spec_json: str,
        status: JobStatus | str = JobStatus.QUEUED,
        parent_job_id: int | None = None,
    ) -> int:
        """Record a new job and return its id.

        ``status="running"`` is for a job this process starts at once: it is never visible as queued,
        so no other runner can claim it. ``parent_job_id`` links a rerun or resume to its original.
        """
        status = JobStatus(status)
        if status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            raise ValueError(f"a new job is queued or running, not {status}")
        try:
            spec = json.loads(spec_json)
        except json.JSONDecodeError:
            spec = None
        if not isinstance(spec, dict):
            raise ValueError(f"spec_json must be a JSON object, got {spec_json[:80]!r}")
        running = status is JobStatus.RUNNING
        now = _time_text(_now())
        with self._write() as conn:
            if parent_job_id is not None:
                self._job_row(conn, parent_job_id)
            return conn.execute(
                "INSERT INTO jobs (kind, status, spec_json, created, started, pid, host, parent_job_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    kind,
                    status,
                    spec_json,
                    now,
                    now if running else None,
                    os.getpid() if running else None,
                    HOST if running else None,
                    parent_job_id,
                ),
            ).fetchone()[0]

    def _start(self, conn: sqlite3.Connection, job_id: int, device: str, versions: dict[str, str]) -> None:
        conn.execute(
            "UPDATE jobs SET status = ?, started = COALESCE(started, ?), device = ?, versions_json = ?,"
            " pid = ?, host = ? WHERE id = ?",
            (JobStatus.RUNNING, _time_text(_now()), device, json.dumps(versions), os.getpid(), HOST, job_id),
        )

    def mark_running(self, job_id: int, device: str, versions: dict[str, str]) -> None:
        """Start a queued job in this process, recording the device and library versions it runs with.

        A job this process already runs (created running, or claimed) only gets device and versions.
        """
        with self._write() as conn:
            row = self._job_row(conn, job_id)
            ours = row["status"] == JobStatus.RUNNING and row["pid"] == os.getpid() and row["host"] == HOST
            if row["status"] != JobStatus.QUEUED and not ours:
                raise JobStoreError(
                    f"job {job_id} is {row['status']} (process {row['pid']} on {row['host']}) and cannot"
                    " start again: run it again as a new job"
                )
            self._start(conn, job_id, device, versions)

    def claim_next_queued(self, device: str, versions: dict[str, str] | None = None) -> JobRecord | None:
        """Take the oldest queued job and mark it running, in one transaction: no job runs twice."""
        with self._write() as conn:
            row = conn.execute(
                "SELECT id FROM jobs WHERE status = ? ORDER BY id LIMIT 1", (JobStatus.QUEUED,)
            ).fetchone()
            if row is None:
                return None
            self._start(conn, row["id"], device, versions or {})
            return _job_from_row(self._job_row(conn, row["id"]))

    def _finish(
        self,
        conn: sqlite3.Connection,
        row: sqlite3.Row,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        message: str | None = None,
        detail: str | None = None,
    ) -> None:
        finished = _now()
        started = _parse_time(row["started"])
        conn.execute(
            "UPDATE jobs SET status = ?, finished = ?, duration_s = ?, result_json = ?, error_message = ?,"
            " error_detail = ? WHERE id = ?",
            (
                status,
                _time_text(finished),
                (finished - started).total_seconds() if started else None,
                json.dumps(result) if result is not None else None,
                message or None,
                detail or None,
                row["id"],
            ),
        )

    def _end(self, job_id: int, status: JobStatus, allowed: tuple[JobStatus, ...], **fields: Any) -> None:
        with self._write() as conn:
            row = self._job_row(conn, job_id)
            if row["status"] not in allowed:
                raise JobStoreError(f"job {job_id} is already {row['status']}; it cannot become {status}")
            self._finish(conn, row, status, **fields)

    def mark_succeeded(self, job_id: int, result: dict[str, Any]) -> None:
        """Finish a running job with its final metrics and summary."""
        self._end(job_id, JobStatus.SUCCEEDED, (JobStatus.RUNNING,), result=result)

    def mark_failed(self, job_id: int, message: str, detail: str = "") -> None:
        """Finish a job that failed: ``message`` for the user, ``detail`` (traceback, cause) for a report."""
        self._end(
            job_id, JobStatus.FAILED, (JobStatus.QUEUED, JobStatus.RUNNING), message=message, detail=detail
        )

    def mark_cancelled(self, job_id: int, message: str = "") -> None:
        """Finish a job the user stopped (the runner calls it once it has cleaned up)."""
        self._end(job_id, JobStatus.CANCELLED, (JobStatus.QUEUED, JobStatus.RUNNING), message=message)

    def request_cancel(self, job_id: int) -> JobRecord:
        """Cancel a queued job at once, or flag a running one for its runner to stop between steps.

        A job that already ended stays as it is; the returned record tells the caller which happened.
        """
        with self._write() as conn:
            row = self._job_row(conn, job_id)
            if row["status"] == JobStatus.QUEUED:
                self._finish(conn, row, JobStatus.CANCELLED, message="cancelled before it started")
            elif row["status"] == JobStatus.RUNNING:
                conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            return _job_from_row(self._job_row(conn, job_id))

    def is_cancel_requested(self, job_id: int) -> bool:
        """Tell a runner, possibly in another process, that the user asked to stop its job."""
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise self._unknown(job_id)
        return bool(rows[0]["cancel_requested"])

    def set_checkpoint(self, job_id: int, path: str | Path) -> None:
        """Remember the latest checkpoint, so an interrupted job can resume from it."""
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute("UPDATE jobs SET checkpoint_path = ? WHERE id = ?", (os.fspath(path), job_id))

    def record_epoch(
        self,
        job_id: int,
        epoch: int,
        train_loss: float | None,
        val_loss: float | None,
        metrics: dict[str, float],
        lr: float | None,
        duration_s: float | None,
    ) -> None:
        """Store one epoch's numbers; an epoch recorded again after a resume replaces the old row."""
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute(
                "INSERT OR REPLACE INTO epochs (job_id, epoch, train_loss, val_loss, metrics_json, lr,"
                " duration_s) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job_id, epoch, train_loss, val_loss, json.dumps(metrics), lr, duration_s),
            )

    def add_artifact(self, job_id: int, kind: ArtifactKind | str, path: str | Path) -> None:
        """Record a file the job has written (call it after the file is complete)."""
        kind = ArtifactKind(kind)
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise JobStoreError(
                f"cannot record the {kind} output {path} of job {job_id}: {exc.strerror}; write the file"
                " before recording it"
            ) from exc
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute(
                "INSERT OR REPLACE INTO artifacts (job_id, kind, path, size_bytes, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (job_id, kind, os.fspath(path), size, _time_text(_now())),
            )

    def get_job(self, job_id: int) -> JobRecord:
        """Return one job; an unknown id raises :class:`JobStoreError`."""
        rows = self._read(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise self._unknown(job_id)
        return _job_from_row(rows[0])

    def list_jobs(self, limit: int | None = 100, status: JobStatus | str | None = None) -> list[JobRecord]:
        """Return jobs newest first, optionally only those in one status; ``limit=None`` returns all."""
        where, params = ("WHERE status = ?", (JobStatus(status),)) if status is not None else ("", ())
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [_job_from_row(row) for row in rows]

    def interrupted_jobs(self) -> list[JobRecord]:
        """Return every job a crash stopped, newest first, to offer resuming them."""
        return self.list_jobs(limit=None, status=JobStatus.INTERRUPTED)

    def next_queued(self) -> JobRecord | None:
        """Return the oldest queued job without claiming it."""
        rows = self._read(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = ? ORDER BY id LIMIT 1", (JobStatus.QUEUED,)
        )
        return _job_from_row(rows[0]) if rows else None

    def epochs(self, job_id: int) -> list[EpochRecord]:
        """Return a job's epochs in order, for its loss curve."""
        rows = self._read("SELECT * FROM epochs WHERE job_id = ? ORDER BY epoch", (job_id,))
        return [
            EpochRecord(
                job_id=row["job_id"],
                epoch=row["epoch"],
                train_loss=row["train_loss"],
                val_loss=row["val_loss"],
                metrics=json.loads(row["metrics_json"]),
                lr=row["lr"],
                duration_s=row["duration_s"],
            )
            for row in rows
        ]

    def artifacts(self, job_id: int) -> list[ArtifactRecord]:
        """Return the files a job wrote, in the order it recorded them."""
        rows = self._read("SELECT * FROM artifacts WHERE job_id = ? ORDER BY created, rowid", (job_id,))
        return [
            ArtifactRecord(
                job_id=row["job_id"],
                kind=ArtifactKind(row["kind"]),
                path=Path(row["path"]),
                size_bytes=row["size_bytes"],
                created=datetime.fromisoformat(row["created"]),
            )
            for row in rows
        ]

    def recover_interrupted(self) -> list[JobRecord]:
        """Mark running jobs whose process on this host is gone as interrupted; call it at every start.

        Jobs running on another host that shares the folder are left alone: their process cannot be
        checked from here. The checkpoint path is kept, so the job can be resumed; ``finished`` stays
        empty because when the process died is unknown.
        """
        with self._write() as conn:
            running = conn.execute(
                "SELECT id, pid, checkpoint_path FROM jobs WHERE status = ? AND (host = ? OR host IS NULL)",
                (JobStatus.RUNNING, HOST),
            ).fetchall()
            dead = [row for row in running if row["pid"] is None or not process_alive(row["pid"])]
            for row in dead:
                resume = "resume it from its last checkpoint" if row["checkpoint_path"] else "run it again"
                conn.execute(
                    "UPDATE jobs SET status = ?, error_message = ? WHERE id = ?",
                    (
                        JobStatus.INTERRUPTED,
                        f"ModelAI stopped while it ran (process {row['pid']} on {HOST} is gone): {resume}",
                        row["id"],
                    ),
                )
            return [_job_from_row(self._job_row(conn, row["id"])) for row in dead]

    def integrity_ok(self) -> bool:
        """Run SQLite's full consistency check (slow on a big store: for diagnostics and tests)."""
        try:
            return [tuple(row) for row in self._read("PRAGMA integrity_check")] == [("ok",)]
        except JobStoreError:
            return False

    def close(self) -> None:
        """Close the connection; the store stays consistent even if a process never calls it."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
