"""Opening the job store's SQLite file, and naming what went wrong when that fails.

Kept apart from :mod:`engine.jobs.store` because opening has a trap of its own: switching a new file to
WAL mode needs a lock that SQLite does not wait for (its busy timeout is not consulted), so two
threads or processes that open a fresh store at once (the window's job worker and the Jobs page's
poll, two command lines) would see "database is locked" at once. The switch is retried here until
the busy timeout instead.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from engine.errors import JobStoreError

RETRY_PAUSE_S = 0.02


def connect(path: Path, busy_timeout_s: float, read_only: bool) -> sqlite3.Connection:
    """An autocommit connection usable from several threads; ``read_only`` opens without ever
    writing, so a view that polls the history takes no write lock."""
    database = f"{path.resolve().as_uri()}?mode=ro" if read_only else path
    try:
        conn = sqlite3.connect(
            database,
            timeout=busy_timeout_s,
            isolation_level=None,
            check_same_thread=False,
            uri=read_only,
        )
    except sqlite3.Error as exc:
        raise store_error(path, exc) from exc
    conn.row_factory = sqlite3.Row
    return conn


def prepare_for_writing(conn: sqlite3.Connection, path: Path, busy_timeout_s: float) -> None:
    """Put the store in WAL mode (readers never block the writer) with crash-safe settings,
    waiting up to ``busy_timeout_s`` for another connection that is creating or opening it."""
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.Error as exc:
            if not _is_busy(exc) or time.monotonic() >= deadline:
                raise store_error(path, exc) from exc
            time.sleep(RETRY_PAUSE_S)
    try:
        # NORMAL is crash-safe in WAL mode; a power cut may only lose the last few commits.
        for pragma in ("synchronous = NORMAL", "foreign_keys = ON"):
            conn.execute(f"PRAGMA {pragma}")
    except sqlite3.Error as exc:
        raise store_error(path, exc) from exc


def _is_busy(exc: sqlite3.Error) -> bool:
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def store_error(path: Path, exc: sqlite3.Error) -> JobStoreError:
    """Turn an SQLite error into a message that names the store's file and what to do about it."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    messages = {
        sqlite3.SQLITE_NOTADB: f"{path} is not a ModelAI job store (not an SQLite database):"
        " move it away or choose another --home",
        sqlite3.SQLITE_READONLY: f"the job store {path} or its folder is read-only: make both"
        " writable, or choose another --home",
        sqlite3.SQLITE_CANTOPEN: f"cannot open the job store {path}: check that its folder exists"
        " and is writable, or choose another --home",
        sqlite3.SQLITE_BUSY: f"the job store {path} stayed locked by another ModelAI process:"
        " wait for it to finish writing and try again",
        sqlite3.SQLITE_FULL: f"the disk holding the job store {path} is full: free some space",
        sqlite3.SQLITE_CORRUPT: f"the job store {path} is damaged: move it away (ModelAI starts a"
        " new one) or choose another --home",
    }
    return JobStoreError(messages.get(code, f"cannot use the job store {path}: {exc}"))
