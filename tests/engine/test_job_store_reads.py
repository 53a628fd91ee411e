"""Reading the job store for a view: read-only, never blocked by a writer, and a newer store's
unknown statuses and output kinds shown as they are stored."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from engine.jobs.records import SCHEMA_VERSION, UNKNOWN, ArtifactKind, JobStatus
from engine.jobs.runner import open_store, read_store
from engine.jobs.store import JobStore
from engine.paths import jobs_db_path
from tests.engine.test_jobs import V1_DDL, raw_execute

SPEC = json.dumps({"task": "segmentation", "epochs": 3})


def test_reading_takes_no_write_lock(tmp_path: Path):
    with open_store(tmp_path) as store:
        job_id = store.create_job("train", SPEC)
    writer = sqlite3.connect(jobs_db_path(tmp_path), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process in the middle of a write
        writer.execute("UPDATE jobs SET error_message = 'half-written' WHERE id = ?", (job_id,))
        with read_store(tmp_path) as store:
            [job] = store.list_jobs()
            assert (job.id, job.status, job.error_message) == (job_id, JobStatus.QUEUED, None)
            assert store.epochs(job_id) == [] and store.artifacts(job_id) == []
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_newer_stores_unknown_values_read_as_they_are(tmp_path: Path):
    with open_store(tmp_path) as store:
        job_id = store.create_job("train", SPEC, status="running")
        output = tmp_path / "model.onnx"
        output.write_bytes(b"onnx")
        store.add_artifact(job_id, "model", output)
    raw_execute(
        jobs_db_path(tmp_path),
        f"UPDATE jobs SET status = 'paused' WHERE id = {job_id}",
        f"UPDATE artifacts SET kind = 'onnx' WHERE job_id = {job_id}",
        "ALTER TABLE jobs ADD COLUMN priority INTEGER",
        f"PRAGMA user_version = {SCHEMA_VERSION + 1}",
    )
    with read_store(tmp_path) as store:
        [job] = store.list_jobs()
        [artifact] = store.artifacts(job_id)
    assert (str(job.status), job.status.value, job.status.name) == ("paused", "paused", UNKNOWN)
    assert job.status not in list(JobStatus) and isinstance(job.status, JobStatus)
    assert (artifact.kind.value, artifact.kind.name, artifact.path) == ("onnx", UNKNOWN, output)
    assert ArtifactKind.read("model") is ArtifactKind.MODEL


def test_a_missing_or_older_store_is_created_or_migrated_once(tmp_path: Path):
    with read_store(tmp_path / "new") as store:
        assert store.list_jobs() == []
    older = tmp_path / "old" / "jobs.sqlite"
    older.parent.mkdir()
    raw_execute(older, *V1_DDL, "PRAGMA user_version = 1")
    with JobStore.for_reading(older) as store:
        assert store.list_jobs() == []
    with sqlite3.connect(older) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def test_a_new_store_opened_at_once_by_a_job_and_by_views_opens_for_all(tmp_path: Path):
    """The window's first job and the Jobs page's poll open a missing store in the same instant;
    SQLite does not wait for the lock that switching a new file to WAL needs, so neither may fail."""
    openers = (open_store, read_store, open_store, read_store)
    for attempt in range(40):
        home = tmp_path / str(attempt)
        start = threading.Barrier(len(openers))
        failures: list[str] = []

        def open_at_once(opener, home=home, start=start, failures=failures) -> None:
            start.wait()
            try:
                with opener(home) as store:
                    store.list_jobs()
            except Exception as exc:
                failures.append(f"{opener.__name__}: {exc}")

        threads = [threading.Thread(target=open_at_once, args=(opener,)) for opener in openers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not failures, failures
