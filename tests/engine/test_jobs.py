"""The job store on real SQLite files: lifecycle, queue, cancel, crashes, concurrency and migrations."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs
import pytest

from engine.errors import JobCancelled, JobStoreError
from engine.jobs.records import HOST, SCHEMA_VERSION, ArtifactKind, JobStatus, process_alive
from engine.jobs.store import JobStore
from engine.paths import HOME_ENV_VAR, HOME_SUBFOLDERS, app_home, jobs_db_path

CHILD = Path(__file__).with_name("jobs_writer_child.py")
SPEC = json.dumps({"task": "segmentation", "epochs": 3})

# The schema as the first release wrote it. Kept literally: stores written back then must still open.
V1_DDL = (
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, status TEXT NOT NULL,"
    " spec_json TEXT NOT NULL, created TEXT NOT NULL, started TEXT, finished TEXT, duration_s REAL,"
    " result_json TEXT, error_message TEXT, error_detail TEXT, parent_job_id INTEGER REFERENCES jobs(id))",
    "CREATE INDEX jobs_by_status ON jobs (status, id)",
    "CREATE TABLE epochs (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " epoch INTEGER NOT NULL, train_loss REAL, val_loss REAL, metrics_json TEXT NOT NULL DEFAULT '{}',"
    " lr REAL, duration_s REAL, PRIMARY KEY (job_id, epoch))",
    "CREATE TABLE artifacts (job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, created TEXT NOT NULL,"
    " PRIMARY KEY (job_id, path))",
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[JobStore]:
    with JobStore(tmp_path / "jobs.sqlite") as job_store:
        yield job_store


def spawn_writer(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def raw_execute(db: Path, *statements: str) -> None:
    """Write to a store behind JobStore's back, as an older or newer ModelAI would have."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def test_app_home_order_is_override_then_environment_then_platform_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(HOME_ENV_VAR, str(tmp_path / "from_env"))
    assert app_home(tmp_path / "given") == (tmp_path / "given").resolve()
    home = app_home()
    assert home == (tmp_path / "from_env").resolve()
    assert sorted(p.name for p in home.iterdir()) == sorted(HOME_SUBFOLDERS)
    assert jobs_db_path(home) == home / "jobs.sqlite"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_DATA_HOME only moves it on Linux")
def test_app_home_defaults_to_the_platform_data_folder(tmp_path, monkeypatch):
    monkeypatch.delenv(HOME_ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert app_home() == Path(platformdirs.user_data_dir("ModelAI", "ModelAI")).resolve()
    assert (tmp_path / "xdg" / "ModelAI" / "models").is_dir()


def test_app_home_that_cannot_be_created_says_how_to_choose_another(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(JobStoreError, match=f"--home or the {HOME_ENV_VAR}") as caught:
        app_home(blocker / "home")
    assert str(blocker / "home") in str(caught.value)


def test_succeeded_job_keeps_run_context_epochs_artifacts_and_duration(store, tmp_path):
    job_id = store.create_job("train", SPEC)
    queued = store.get_job(job_id)
    assert (queued.status, queued.spec) == (JobStatus.QUEUED, json.loads(SPEC))
    assert (queued.started, queued.pid, queued.host) == (None, os.getpid(), HOST)

    store.mark_running(job_id, "cuda:0", {"torch": "2.13.0"})
    store.record_epoch(job_id, 1, 0.9, 0.8, {"mean_iou": 0.4}, 1e-3, 2.5)
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x" * 123)
    store.add_artifact(job_id, "model", model)
    store.mark_succeeded(job_id, {"best_val_loss": 0.8})

    job = store.get_job(job_id)
    assert job.status is JobStatus.SUCCEEDED
    assert (job.device, job.versions, job.pid, job.host) == ("cuda:0", {"torch": "2.13.0"}, os.getpid(), HOST)
    assert job.result == {"best_val_loss": 0.8}
    assert job.created <= job.started <= job.finished
    assert job.duration_s == pytest.approx((job.finished - job.started).total_seconds(), abs=2e-3)
    [epoch] = store.epochs(job_id)
    assert (epoch.epoch, epoch.train_loss, epoch.val_loss) == (1, 0.9, 0.8)
    assert (epoch.metrics, epoch.lr, epoch.duration_s) == ({"mean_iou": 0.4}, 1e-3, 2.5)
    [artifact] = store.artifacts(job_id)
    assert (artifact.kind, artifact.path, artifact.size_bytes) == (ArtifactKind.MODEL, model, 123)


def test_failed_job_keeps_message_and_detail(store):
    job_id = store.create_job("predict", SPEC, status="running")
    store.mark_running(job_id, "cpu", {})
    store.mark_failed(
        job_id, "raster a.tif has 3 bands, the model needs 4", "Traceback ...\nBandMismatchError"
    )
    job = store.get_job(job_id)
    assert job.status is JobStatus.FAILED
    assert job.error_message == "raster a.tif has 3 bands, the model needs 4"
    assert job.error_detail == "Traceback ...\nBandMismatchError"
    assert job.result is None
    with pytest.raises(JobStoreError, match=f"job {job_id} is already failed"):
        store.mark_succeeded(job_id, {})
    with pytest.raises(JobStoreError, match="cannot start again: run it again as a new job"):
        store.mark_running(job_id, "cpu", {})


def test_unknown_job_and_bad_artifact_say_what_to_do(store, tmp_path):
    with pytest.raises(
        JobStoreError, match=r"no job 42 in .*jobs\.sqlite; `modelai jobs list` shows the ids"
    ):
        store.get_job(42)
    with pytest.raises(JobStoreError, match="no job 42"):
        store.record_epoch(42, 1, 1.0, None, {}, 0.1, 1.0)
    job_id = store.create_job("train", SPEC)
    with pytest.raises(JobStoreError, match="write the file before recording it"):
        store.add_artifact(job_id, "summary", tmp_path / "missing.json")


def test_epoch_recorded_again_after_resume_replaces_the_row(store):
    job_id = store.create_job("train", SPEC)
    for epoch, loss in ((1, 0.9), (2, 0.7), (2, 0.65), (3, 0.6)):
        store.record_epoch(job_id, epoch, loss, None, {}, 0.01, 1.0)
    assert [(e.epoch, e.train_loss, e.val_loss) for e in store.epochs(job_id)] == [
        (1, 0.9, None),
        (2, 0.65, None),
        (3, 0.6, None),
    ]


def test_queue_is_served_oldest_first_and_listed_newest_first(store):
    ids = [store.create_job("train", SPEC) for _ in range(3)]
    assert store.next_queued().id == ids[0]
    claimed = store.claim_next_queued("cpu", {"torch": "2.13.0"})
    assert (claimed.id, claimed.status, claimed.device, claimed.pid) == (
        ids[0],
        JobStatus.RUNNING,
        "cpu",
        os.getpid(),
    )
    assert store.next_queued().id == ids[1]
    assert [job.id for job in store.list_jobs()] == ids[::-1]
    assert [job.id for job in store.list_jobs(status="queued")] == ids[1:][::-1]
    assert [job.id for job in store.list_jobs(limit=1)] == [ids[2]]
    assert [store.claim_next_queued("cpu").id for _ in range(2)] == ids[1:]
    assert store.claim_next_queued("cpu") is None


def test_two_runners_claiming_at_once_never_take_the_same_job(tmp_path):
    db = tmp_path / "jobs.sqlite"
    with JobStore(db) as seed:
        ids = [seed.create_job("train", SPEC) for _ in range(60)]
    claimed: list[list[int]] = [[], []]

    def drain(mine: list[int]) -> None:
        with JobStore(db) as runner:
            while (job := runner.claim_next_queued("cpu")) is not None:
                mine.append(job.id)

    threads = [threading.Thread(target=drain, args=(mine,)) for mine in claimed]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed[0] + claimed[1]) == ids


def test_cancel_of_queued_job_is_immediate_and_of_running_job_is_a_flag(store):
    queued_id, running_id = store.create_job("train", SPEC), store.create_job("train", SPEC)
    store.mark_running(running_id, "cpu", {})

    assert store.request_cancel(queued_id).status is JobStatus.CANCELLED
    assert store.get_job(queued_id).finished is not None
    assert store.claim_next_queued("cpu") is None

    assert not store.is_cancel_requested(running_id)
    flagged = store.request_cancel(running_id)
    assert (flagged.status, flagged.cancel_requested) == (JobStatus.RUNNING, True)
    assert JobStore(store.path).is_cancel_requested(running_id)
    store.mark_cancelled(running_id, "stopped after epoch 2")
    job = store.get_job(running_id)
    assert (job.status, job.error_message) == (JobStatus.CANCELLED, "stopped after epoch 2")
    assert job.duration_s is not None
    assert store.request_cancel(running_id).status is JobStatus.CANCELLED


def test_job_of_a_process_that_died_becomes_interrupted_with_its_checkpoint(store, tmp_path):
    own_id = store.create_job("train", SPEC)
    store.mark_running(own_id, "cpu", {})
    checkpoint = tmp_path / "checkpoints" / "last.ckpt"
    child = spawn_writer("abandon", store.path, checkpoint, 2)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    dead_id = int(stdout)
    assert not process_alive(child.pid)

    [recovered] = store.recover_interrupted()
    assert (recovered.id, recovered.status, recovered.checkpoint_path) == (
        dead_id,
        JobStatus.INTERRUPTED,
        checkpoint,
    )
    assert f"process {child.pid}" in recovered.error_message
    assert len(store.epochs(dead_id)) == 2
    assert store.get_job(own_id).status is JobStatus.RUNNING
    assert store.recover_interrupted() == []
    assert [job.id for job in store.interrupted_jobs()] == [dead_id]
    resumed_id = store.create_job("train", SPEC, parent_job_id=dead_id)
    assert store.get_job(resumed_id).parent_job_id == dead_id


def test_two_processes_writing_at_once_lose_no_row(tmp_path):
    db, go = tmp_path / "jobs.sqlite", tmp_path / "go"
    JobStore(db).close()
    writers = {label: spawn_writer("bulk", db, label, 200, go) for label in ("a", "b")}
    for writer in writers.values():
        assert writer.stdout.readline().strip() == "ready"
    go.touch()
    for writer in writers.values():
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr

    with JobStore(db) as store:
        jobs = store.list_jobs(limit=None)
        ids = {label: [job.id for job in jobs if job.spec["writer"] == label] for label in writers}
        assert len(jobs) == 400
        assert {job.status for job in jobs} == {JobStatus.SUCCEEDED}
        for label in writers:
            assert sorted(job.spec["index"] for job in jobs if job.spec["writer"] == label) == list(
                range(200)
            )
        assert min(ids["a"]) < max(ids["b"]) and min(ids["b"]) < max(ids["a"]), "the writers did not overlap"
        assert sum(len(store.epochs(job.id)) for job in jobs) == 1200
        assert store.integrity_ok()


def test_writer_killed_mid_write_leaves_a_sound_store_and_an_interrupted_job(tmp_path):
    db = tmp_path / "jobs.sqlite"
    JobStore(db).close()
    writer = spawn_writer("abandon", db, tmp_path / "last.ckpt", -1)
    job_id = int(writer.stdout.readline())
    with JobStore(db) as watcher:
        deadline = time.monotonic() + 20
        while len(watcher.epochs(job_id)) < 50:
            assert time.monotonic() < deadline, "the writer never recorded 50 epochs"
            time.sleep(0.01)
        assert watcher.recover_interrupted() == []
        writer.kill()
        writer.wait(timeout=10)

    with JobStore(db) as restarted:
        assert restarted.integrity_ok()
        [recovered] = restarted.recover_interrupted()
        assert (recovered.id, recovered.status) == (job_id, JobStatus.INTERRUPTED)
        assert len(restarted.epochs(job_id)) >= 50


def test_readers_never_block_the_writer(store):
    store.create_job("train", SPEC)
    reader = sqlite3.connect(store.path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        with JobStore(store.path, busy_timeout_s=0.2) as writer:
            writer.create_job("train", SPEC)
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (1,)
        reader.execute("COMMIT")
        assert reader.execute("SELECT count(*) FROM jobs").fetchone() == (2,)
    finally:
        reader.close()


def test_one_store_shared_by_two_threads(store):
    def run_jobs() -> None:
        for _ in range(50):
            job_id = store.create_job("train", SPEC)
            store.mark_running(job_id, "cpu", {})
            store.mark_succeeded(job_id, {})

    threads = [threading.Thread(target=run_jobs) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [job.status for job in store.list_jobs(limit=None)] == [JobStatus.SUCCEEDED] * 100


def test_version_1_store_is_migrated_with_its_rows(tmp_path):
    db = tmp_path / "jobs.sqlite"
    raw_execute(
        db,
        *V1_DDL,
        "INSERT INTO jobs (kind, status, spec_json, created, started, finished, duration_s, result_json)"
        " VALUES ('train', 'succeeded', '{\"epochs\": 3}', '2024-05-01T10:00:00.000+00:00',"
        " '2024-05-01T10:00:01.000+00:00', '2024-05-01T10:05:01.000+00:00', 300.0, '{\"iou\": 0.7}')",
        "INSERT INTO epochs (job_id, epoch, train_loss, val_loss, metrics_json, lr, duration_s)"
        " VALUES (1, 1, 0.5, 0.6, '{}', 0.001, 100.0)",
        "PRAGMA user_version = 1",
    )
    with JobStore(db) as store:
        job = store.get_job(1)
        assert (job.status, job.spec, job.result, job.duration_s) == (
            JobStatus.SUCCEEDED,
            {"epochs": 3},
            {"iou": 0.7},
            300.0,
        )
        assert (job.device, job.versions, job.checkpoint_path, job.cancel_requested) == (
            None,
            {},
            None,
            False,
        )
        assert [e.train_loss for e in store.epochs(1)] == [0.5]
        store.set_checkpoint(store.create_job("train", SPEC), "resume.ckpt")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        conn.close()


def test_store_from_a_newer_version_is_refused(tmp_path):
    db = tmp_path / "jobs.sqlite"
    JobStore(db).close()
    raw_execute(db, f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(JobStoreError, match=r"newer ModelAI .*update ModelAI"):
        JobStore(db)


def test_files_that_are_not_job_stores_are_refused(tmp_path):
    text_file = tmp_path / "jobs.sqlite"
    text_file.write_bytes(b"these are my notes, not a database\n" * 200)
    with pytest.raises(JobStoreError, match=r"is not a ModelAI job store \(not an SQLite database\)"):
        JobStore(text_file)
    other_db = tmp_path / "other.sqlite"
    raw_execute(other_db, "CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(JobStoreError, match="another program"):
        JobStore(other_db)


@contextmanager
def permissions_enforced() -> Iterator[None]:
    """Root ignores permission bits, so a root test run acts as ``nobody`` while it opens the store."""
    if os.geteuid() != 0:
        yield
        return
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)


@pytest.mark.skipif(os.name != "posix", reason="needs POSIX permission bits")
@pytest.mark.parametrize(
    ("folder_mode", "file_mode"), [(0o777, 0o444), (0o555, 0o666)], ids=["file", "folder"]
)
def test_read_only_store_is_refused_when_opened(folder_mode, file_mode):
    # Not tmp_path: its parents are private to the test user, and ``nobody`` must reach the store.
    sandbox = Path(tempfile.mkdtemp())
    home = sandbox / "home"
    home.mkdir()
    try:
        sandbox.chmod(0o755)
        db = home / "jobs.sqlite"
        JobStore(db).close()
        db.chmod(file_mode)
        home.chmod(folder_mode)
        with permissions_enforced(), pytest.raises(JobStoreError, match="read-only: make both writable"):
            JobStore(db)
    finally:
        home.chmod(0o755)
        shutil.rmtree(sandbox)


def test_integrity_check_reports_a_damaged_store(tmp_path):
    db = tmp_path / "jobs.sqlite"
    with JobStore(db) as store:
        for _ in range(300):
            store.create_job("train", json.dumps({"padding": "x" * 500}))
        assert store.integrity_ok()
    with db.open("r+b") as damaged:
        damaged.seek(4096 * 3)
        damaged.write(b"\xff" * 4096)
    with JobStore(db) as store:
        assert not store.integrity_ok()


def test_a_job_starts_only_when_no_live_job_runs_and_none_older_waits(store):
    older, newer, cancelled = (store.create_job("predict", SPEC) for _ in range(3))
    assert store.start_if_next(newer, "cpu", {}).id == older
    assert store.start_if_next(older, "cuda:0", {"torch": "2.13.0"}) is None
    started = store.get_job(older)
    assert (started.status, started.device, started.versions) == (
        JobStatus.RUNNING,
        "cuda:0",
        {"torch": "2.13.0"},
    )
    assert store.start_if_next(newer, "cpu", {}).id == older
    store.request_cancel(cancelled)
    with pytest.raises(JobCancelled, match=f"Job {cancelled} was cancelled before it started"):
        store.start_if_next(cancelled, "cpu", {})
    store.mark_succeeded(older, {})
    assert store.start_if_next(newer, "cpu", {}) is None
    assert store.get_job(older).finished <= store.get_job(newer).started
    with pytest.raises(JobStoreError, match=f"job {newer} is running, not queued"):
        store.start_if_next(newer, "cpu", {})


def test_jobs_of_dead_processes_never_block_the_queue_and_are_recovered(store):
    crashed, orphan, waiting = (store.create_job("train", SPEC) for _ in range(3))
    store.mark_running(crashed, "cpu", {})
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    raw_execute(store.path, f"UPDATE jobs SET pid = {gone.pid} WHERE id IN ({crashed}, {orphan})")
    assert store.start_if_next(waiting, "cpu", {}) is None

    recovered = {job.id: job for job in store.recover_interrupted()}
    assert sorted(recovered) == [crashed, orphan]
    assert {job.status for job in recovered.values()} == {JobStatus.INTERRUPTED}
    assert "stopped while it ran" in recovered[crashed].error_message
    assert "stopped before it started" in recovered[orphan].error_message
    assert recovered[orphan].started is None
    assert store.get_job(waiting).status is JobStatus.RUNNING


def test_interrupted_job_is_final_and_keeps_its_duration(store):
    job_id = store.create_job("train", SPEC, status="running")
    store.set_checkpoint(job_id, "last.ckpt")
    store.mark_interrupted(job_id, "stopped by a second Ctrl-C")
    job = store.get_job(job_id)
    assert (job.status, job.error_message, job.checkpoint_path) == (
        JobStatus.INTERRUPTED,
        "stopped by a second Ctrl-C",
        Path("last.ckpt"),
    )
    assert job.duration_s is not None
    assert store.recover_interrupted() == []
    with pytest.raises(JobStoreError, match="already interrupted"):
        store.mark_interrupted(job_id, "again")
