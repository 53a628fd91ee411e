"""A second process writing to a job store, for the multi-process and crash tests of engine.jobs.store.

Usage:
    jobs_writer_child.py bulk DB LABEL COUNT GO_FILE
        prints "ready", waits until GO_FILE exists, then runs COUNT jobs (created, running,
        3 epochs, succeeded), pausing a millisecond after each as a real job computes between writes.
    jobs_writer_child.py abandon DB CHECKPOINT EPOCHS
        starts one job, records its checkpoint, prints its id, then writes EPOCHS epochs (forever if
        EPOCHS is negative) and exits without finishing it, as a crash would.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
import time
from pathlib import Path

from engine.jobs.store import JobStore


def run_bulk(store: JobStore, label: str, count: int, go_file: Path) -> None:
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go_file.exists():
        if time.monotonic() > deadline:
            sys.exit(f"{go_file} never appeared")
        time.sleep(0.01)
    for index in range(count):
        job_id = store.create_job("train", json.dumps({"writer": label, "index": index}))
        store.mark_running(job_id, "cpu", {"writer": label})
        for epoch in range(1, 4):
            store.record_epoch(job_id, epoch, 1.0 / epoch, None, {"writer_index": index}, 0.01, 0.1)
        store.mark_succeeded(job_id, {"index": index})
        time.sleep(0.001)


def run_abandon(store: JobStore, checkpoint: str, epochs: int) -> None:
    job_id = store.create_job("train", json.dumps({"writer": "abandon"}))
    store.mark_running(job_id, "cpu", {})
    store.set_checkpoint(job_id, checkpoint)
    print(job_id, flush=True)
    counter = itertools.count(1) if epochs < 0 else range(1, epochs + 1)
    for epoch in counter:
        store.record_epoch(job_id, epoch, 1.0 / epoch, 2.0 / epoch, {"iou": epoch / 1e6}, 0.001, 0.01)
    os._exit(0)  # no close, no finish: what a crash leaves behind


def main() -> None:
    mode, db, *args = sys.argv[1:]
    store = JobStore(db, busy_timeout_s=30)
    if mode == "bulk":
        run_bulk(store, args[0], int(args[1]), Path(args[2]))
        store.close()
    else:
        run_abandon(store, args[0], int(args[1]))


if __name__ == "__main__":
    main()
