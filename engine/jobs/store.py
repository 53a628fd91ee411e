"""The local job store: every training and inference job, its per-epoch metrics and its outputs.

One SQLite file (``jobs.sqlite`` in the data folder) is the history the window, the command line and
a crashed run's next start all read. It runs in WAL mode so readers never block the writer, every
write is one short ``BEGIN IMMEDIATE`` transaction so several processes can share it, and its schema
carries ``PRAGMA user_version`` with forward migrations (in :mod:`engine.jobs.records`) so an updated
app opens an older store.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from engine.errors import JobCancelled, JobStoreError
from engine.jobs.connection import connect, prepare_for_writing, store_error
from engine.jobs.records import (
    HOST,
    JOB_COLUMNS,
    ArtifactKind,
    ArtifactRecord,
    EpochRecord,
    JobRecord,
    JobStatus,
    artifact_from_row,
    epoch_from_row,
    job_from_row,
    migrate,
    owner_alive,
    parse_time,
    process_started,
    time_text,
    utc_now,
)


class JobStore:
    """The job store of one data folder; one connection, shared safely by the GUI and a worker thread.

    Args:
        path: the SQLite file (see :func:`engine.paths.jobs_db_path`); created when missing.
        busy_timeout_s: how long a write waits for another process's write before giving up.
        read_only: read without ever writing (no migration, no lock), for views that poll the
            history; see :meth:`for_reading`.

    Raises:
        JobStoreError: the file is not a job store, is read-only, or comes from a newer ModelAI.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0, read_only: bool = False) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = connect(self.path, busy_timeout_s, read_only)
        try:
            if read_only:
                self._open_for_reading()
            else:
                prepare_for_writing(self._conn, self.path, busy_timeout_s)
                with self._write() as conn:
                    migrate(conn, self.path)
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def for_reading(cls, path: str | Path) -> Self:
        """The store opened read-only: a view that reads it every second takes no write lock and
        writes nothing. A store missing or older than this ModelAI is first opened once for
        writing, which creates or migrates it."""
        try:
            return cls(path, read_only=True)
        except JobStoreError:
            cls(path).close()
            return cls(path, read_only=True)

    def _open_for_reading(self) -> None:
        try:
            self._conn.execute("PRAGMA query_only = ON")
            migrate(self._conn, self.path, read_only=True)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: sqlite3.Error) -> JobStoreError:
        return store_error(self.path, exc)

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
        row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
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
        """Record a new job owned by this process and return its id.

        ``status="running"`` is for a job this process starts at once: it is never visible as queued,
        so no other runner can claim it. A queued job records its owner too, so that a queued job
        whose process died is recovered instead of blocking the queue forever. ``parent_job_id``
        links a rerun or resume to its original.
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
        now = time_text(utc_now())
        with self._write() as conn:
            if parent_job_id is not None:
                self._job_row(conn, parent_job_id)
            return conn.execute(
                "INSERT INTO jobs (kind, status, spec_json, created, started, pid, pid_started, host,"
                " parent_job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    kind,
                    status,
                    spec_json,
                    now,
                    now if status is JobStatus.RUNNING else None,
                    os.getpid(),
                    process_started(os.getpid()),
                    HOST,
                    parent_job_id,
                ),
            ).fetchone()[0]

    def _start(self, conn: sqlite3.Connection, job_id: int, device: str, versions: dict[str, str]) -> None:
        conn.execute(
            "UPDATE jobs SET status = ?, started = COALESCE(started, ?), device = ?, versions_json = ?,"
            " pid = ?, pid_started = ?, host = ? WHERE id = ?",
            (
                JobStatus.RUNNING,
                time_text(utc_now()),
                device,
                json.dumps(versions),
                os.getpid(),
                process_started(os.getpid()),
                HOST,
                job_id,
            ),
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
            return job_from_row(self._job_row(conn, row["id"]))

    def start_if_next(self, job_id: int, device: str, versions: dict[str, str]) -> JobRecord | None:
        """Start a queued job if its turn has come, else return the job it waits for.

        Its turn comes when no job runs on this host (one GPU at a time) and no older job waits, both
        counting only jobs whose process is alive. The check and the start are one transaction, so
        two processes never both start.

        Raises:
            JobCancelled: the job was cancelled while it waited.
            JobStoreError: the job is neither queued nor cancelled.
        """
        with self._write() as conn:
            row = self._job_row(conn, job_id)
            if row["status"] == JobStatus.CANCELLED:
                raise JobCancelled(f"Job {job_id} was cancelled before it started.")
            if row["status"] != JobStatus.QUEUED:
                raise JobStoreError(f"job {job_id} is {row['status']}, not queued: run it again as a new job")
            ahead = conn.execute(
                f"SELECT {JOB_COLUMNS} FROM jobs WHERE (host = ? OR host IS NULL)"
                " AND (status = ? OR (status = ? AND id < ?)) ORDER BY id",
                (HOST, JobStatus.RUNNING, JobStatus.QUEUED, job_id),
            ).fetchall()
            for other in ahead:
                if owner_alive(other):
                    return job_from_row(other)
            self._start(conn, job_id, device, versions)
            return None

    def _finish(
        self,
        conn: sqlite3.Connection,
        row: sqlite3.Row,
        status: JobStatus,
        result: dict[str, Any] | None = None,
        message: str | None = None,
        detail: str | None = None,
    ) -> None:
        finished = utc_now()
        started = parse_time(row["started"])
        conn.execute(
            # A result recorded while the job ran (see record_result) stays when it ends without one.
            "UPDATE jobs SET status = ?, finished = ?, duration_s = ?,"
            " result_json = COALESCE(?, result_json), error_message = ?, error_detail = ? WHERE id = ?",
            (
                status,
                time_text(finished),
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

    def mark_interrupted(self, job_id: int, message: str) -> None:
        """Finish a job whose process is stopping abruptly (a second Ctrl-C), so it can be resumed."""
        self._end(job_id, JobStatus.INTERRUPTED, (JobStatus.QUEUED, JobStatus.RUNNING), message=message)

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
            return job_from_row(self._job_row(conn, job_id))

    def is_cancel_requested(self, job_id: int) -> bool:
        """Tell a runner, possibly in another process, that the user asked to stop its job."""
        rows = self._read("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise self._unknown(job_id)
        return bool(rows[0]["cancel_requested"])

    def record_result(self, job_id: int, result: dict[str, Any]) -> None:
        """Store what a running job has produced so far (a cluster run's rasters as they finish), so
        that a failure, a cancel or a crash keeps it; its end replaces it only with a final result."""
        with self._write() as conn:
            self._job_row(conn, job_id)
            conn.execute("UPDATE jobs SET result_json = ? WHERE id = ?", (json.dumps(result), job_id))

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
                (job_id, kind, os.fspath(path), size, time_text(utc_now())),
            )

    def get_job(self, job_id: int) -> JobRecord:
        """Return one job; an unknown id raises :class:`JobStoreError`."""
        rows = self._read(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,))
        if not rows:
            raise self._unknown(job_id)
        return job_from_row(rows[0])

    def list_jobs(self, limit: int | None = 100, status: JobStatus | str | None = None) -> list[JobRecord]:
        """Return jobs newest first, optionally only those in one status; ``limit=None`` returns all."""
        where, params = ("WHERE status = ?", (JobStatus(status),)) if status is not None else ("", ())
        rows = self._read(
            f"SELECT {JOB_COLUMNS} FROM jobs {where} ORDER BY id DESC LIMIT ?",
            (*params, -1 if limit is None else limit),
        )
        return [job_from_row(row) for row in rows]

    def interrupted_jobs(self) -> list[JobRecord]:
        """Return every job a crash stopped, newest first, to offer resuming them."""
        return self.list_jobs(limit=None, status=JobStatus.INTERRUPTED)

    def next_queued(self) -> JobRecord | None:
        """Return the oldest queued job without claiming it."""
        rows = self._read(
            f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = ? ORDER BY id LIMIT 1", (JobStatus.QUEUED,)
        )
        return job_from_row(rows[0]) if rows else None

    def epochs(self, job_id: int) -> list[EpochRecord]:
        """Return a job's epochs in order, for its loss curve."""
        rows = self._read("SELECT * FROM epochs WHERE job_id = ? ORDER BY epoch", (job_id,))
        return [epoch_from_row(row) for row in rows]

    def artifacts(self, job_id: int) -> list[ArtifactRecord]:
        """Return the files a job wrote, in the order it recorded them."""
        rows = self._read("SELECT * FROM artifacts WHERE job_id = ? ORDER BY created, rowid", (job_id,))
        return [artifact_from_row(row) for row in rows]

    def recover_interrupted(self) -> list[JobRecord]:
        """Mark jobs of this host whose process is gone as interrupted; call it at every start.

        That is running jobs (a crash) and queued ones (their owner died while they waited).
        Jobs of another host that shares the folder are left alone: their process cannot be checked
        from here. The checkpoint path is kept, so the job can be resumed; ``finished`` stays empty
        because when the process died is unknown.
        """
        with self._write() as conn:
            owned = conn.execute(
                "SELECT id, status, pid, pid_started, checkpoint_path FROM jobs WHERE status IN (?, ?)"
                " AND (host = ? OR host IS NULL)",
                (JobStatus.RUNNING, JobStatus.QUEUED, HOST),
            ).fetchall()
            dead = [row for row in owned if not owner_alive(row)]
            for row in dead:
                when = "while it ran" if row["status"] == JobStatus.RUNNING else "before it started"
                resume = "resume it from its last checkpoint" if row["checkpoint_path"] else "run it again"
                conn.execute(
                    "UPDATE jobs SET status = ?, error_message = ? WHERE id = ?",
                    (
                        JobStatus.INTERRUPTED,
                        f"ModelAI stopped {when} (process {row['pid']} on {HOST} is gone): {resume}",
                        row["id"],
                    ),
                )
            return [job_from_row(self._job_row(conn, row["id"])) for row in dead]

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
