"""Jobs (training, prediction) on a QThread, reported back to the window as queued, throttled signals.

The work itself is `run_spec_job`, a plain function of a spec, a Reporter and a CancelToken, so it is
tested without an event loop; `JobWorker` only runs it on its own thread and turns what it reports
into signals. Signals emitted on the job thread reach widgets on the GUI thread through queued
connections, so a worker never touches a widget. Cancel is the engine's flag, checked between
batches or tiles; the thread is never terminated. The final signal (`finished`, `failed` or
`cancelled`) is sent once the thread has ended, so a page may start the next job as soon as it
hears it.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QThread, QTimer, Signal, SignalInstance

from engine.errors import EngineError, JobCancelled
from engine.jobs.runner import JobOutcome, open_store, run_job, submit
from engine.jobs.specs import JobSpec
from engine.progress import CancelToken, EpochEvent, ProgressEvent, Reporter
from modelai_desktop.control_names import in_window_terms

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.1
PROGRESS_STEP = 0.001
PROGRESS_QUIET_S = 1.0


def run_spec_job(
    spec: JobSpec,
    home: Path,
    reporter: Reporter,
    cancel: CancelToken,
    *,
    parent_job_id: int | None = None,
    on_submitted: Callable[[int], None] | None = None,
) -> JobOutcome:
    """Record a job in the store of ``home`` and run it; the body of every window job.

    Opens its own job store, so it can run on any thread. ``on_submitted`` hears the job id as soon
    as the store row exists, before the job waits for its turn.

    Raises:
        EngineError: the spec cannot run (no job recorded) or the job failed on bad input.
        JobCancelled: the job was cancelled; it is recorded as cancelled, its partial outputs removed.
        Exception: an internal error, recorded as a failed job with its traceback.
    """
    with open_store(home) as store:
        job_id = submit(store, spec, parent_job_id)
        if on_submitted is not None:
            on_submitted(job_id)
        return run_job(store, job_id, reporter, cancel)


class ThrottledSignals:
    """A Reporter that forwards engine events to a worker's signals, at a pace a window can draw.

    Progress goes out at most every ``PROGRESS_INTERVAL_S`` and only when it moved by
    ``PROGRESS_STEP`` of the total (or nothing was sent for ``PROGRESS_QUIET_S``, so rates and ETAs
    stay fresh); a new stage, epoch or file and the last step always go out. Epochs and messages
    are rare and always go out.
    """

    def __init__(self, worker: JobWorker, clock: Callable[[], float] = time.monotonic) -> None:
        self._worker = worker
        self._clock = clock
        self._last: ProgressEvent | None = None
        self._last_sent_at = float("-inf")

    def on_progress(self, event: ProgressEvent) -> None:
        if self._should_send(event):
            self._last, self._last_sent_at = event, self._clock()
            self._worker.progress.emit(event)

    def on_epoch(self, event: EpochEvent) -> None:
        self._worker.epoch.emit(event)

    def on_message(self, level: str, text: str) -> None:
        self._worker.message.emit(level, in_window_terms(text))

    def _should_send(self, event: ProgressEvent) -> bool:
        last = self._last
        if last is None or event.done >= event.total:
            return True
        if _step_of(event) != _step_of(last):
            return True
        elapsed = self._clock() - self._last_sent_at
        if elapsed < PROGRESS_INTERVAL_S:
            return False
        moved = (event.done - last.done) / max(event.total, 1)
        return moved >= PROGRESS_STEP or elapsed >= PROGRESS_QUIET_S


def _step_of(event: ProgressEvent) -> tuple[object, ...]:
    """What identifies one run of progress: a change of it restarts the bar."""
    return (event.stage, event.epoch, event.label, event.total)


class _JobThread(QThread):
    """Runs one callable; a QThread subclass, because the worker object itself stays on the GUI thread."""

    def __init__(self, body: Callable[[], None], parent: QObject) -> None:
        super().__init__(parent)
        self._body = body

    def run(self) -> None:
        self._body()


class JobWorker(QObject):
    """Runs one job spec on its own thread; keep a reference to it until its final signal.

    Signals:
        progress(ProgressEvent): throttled progress of the running step.
        epoch(EpochEvent): a training epoch ended.
        message(str, str): level (``info`` or ``warning``) and text the user should see.
        started(int): the job is recorded in the store under this id.
        finished(JobOutcome): the job succeeded.
        failed(str, str): a message that says what happened and what to do, and the details
            (the traceback of an internal error; empty for bad input, which is no bug) for the log;
            also for a spec refused before any job was recorded.
        cancelled(str): the job stopped on request and left no partial output.
    """

    progress = Signal(object)
    epoch = Signal(object)
    message = Signal(str, str)
    started = Signal(int)
    finished = Signal(object)
    failed = Signal(str, str)
    cancelled = Signal(str)

    def __init__(
        self, spec: JobSpec, home: Path, parent_job_id: int | None = None, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.spec = spec
        self.home = home
        self.parent_job_id = parent_job_id
        self.job_id: int | None = None
        self._cancel = CancelToken()
        self._ending: tuple[SignalInstance, tuple[object, ...]] | None = None
        self._thread = _JobThread(self._run, self)
        self._thread.finished.connect(self._announce_end)
        self.message.connect(self._log_message)

    def start(self) -> None:
        """Start the job on the worker's thread; a worker runs once."""
        if self._thread.isRunning() or self._thread.isFinished():
            raise RuntimeError("A JobWorker runs its job once; make a new worker to run it again.")
        self._thread.start()

    def cancel(self) -> None:
        """Ask the job to stop at its next batch or tile; returns at once."""
        self._cancel.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.cancelled

    def wait(self, ms: int = -1) -> bool:
        """Block until the thread has ended (at most ``ms`` milliseconds; -1 waits for ever)."""
        return self._thread.wait(ms) if ms >= 0 else self._thread.wait()

    def is_running(self) -> bool:
        return self._thread.isRunning()

    def _run(self) -> None:
        """The thread's body: every outcome becomes one final signal, sent once the thread has ended.

        Nothing here logs: logging on a thread Python did not start registers a stand-in thread
        object that outlives it, so the log records are written on the GUI thread instead.
        """
        try:
            outcome = run_spec_job(
                self.spec,
                self.home,
                ThrottledSignals(self),
                self._cancel,
                parent_job_id=self.parent_job_id,
                on_submitted=self._submitted,
            )
        except JobCancelled as exc:
            self._ending = (self.cancelled, (in_window_terms(str(exc)),))
        except EngineError as exc:
            self._ending = (self.failed, (in_window_terms(str(exc)), ""))
        except Exception as exc:
            recorded = f" It is recorded as failed job {self.job_id}." if self.job_id is not None else ""
            message = (
                f"The job stopped on an internal error ({type(exc).__name__}: {exc}).{recorded} "
                "Run it again; if it fails again, send the log file (Help → Open Log Folder)."
            )
            self._ending = (self.failed, (message, traceback.format_exc()))
        else:
            self._ending = (self.finished, (outcome,))

    def _submitted(self, job_id: int) -> None:
        self.job_id = job_id
        self.started.emit(job_id)

    def _announce_end(self) -> None:
        """Runs on the GUI thread after the job thread's last instruction, so ``is_running()`` is False."""
        self._thread.wait()
        if self._ending is None:
            return
        (signal, args), self._ending = self._ending, None
        if signal is self.failed and self.job_id is None:
            log.warning("The job was not started: %s", args[0])
        elif signal is self.failed and not args[1]:
            log.warning("Job %s failed: %s", self.job_id, args[0])
        elif signal is self.failed:
            log.error("Job %s failed: %s\n%s", self.job_id, *args)
        elif signal is self.cancelled:
            log.info("Job %s: %s", self.job_id, *args)
        else:
            log.info("Job %s succeeded", self.job_id)
        signal.emit(*args)

    def _log_message(self, level: str, text: str) -> None:
        log.log(logging.WARNING if level == "warning" else logging.INFO, "Job %s: %s", self.job_id, text)


class JobRegistry(QObject):
    """The jobs this window runs, whichever page started them, so any page can find or cancel them.

    A worker is kept from `add` until just after its final signal (once the signal's slots have
    returned, so the worker is never deleted while it emits); the window stops them all when it
    closes.

    Signals:
        changed(): a job was added, recorded, or ended.
    """

    changed = Signal()

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._workers: list[JobWorker] = []
        self._progress: dict[JobWorker, ProgressEvent] = {}

    def add(self, worker: JobWorker) -> None:
        """Keeps a worker (call it before `JobWorker.start`) until it ends."""
        self._workers.append(worker)
        worker.started.connect(self.changed)
        worker.progress.connect(functools.partial(self._remember_progress, worker))
        for final in (worker.finished, worker.failed, worker.cancelled):
            final.connect(functools.partial(self._remove_soon, worker))
        self.changed.emit()

    def workers(self) -> list[JobWorker]:
        return list(self._workers)

    def find(self, job_id: int) -> JobWorker | None:
        """The worker running job ``job_id`` in this window, if any."""
        return next((worker for worker in self._workers if worker.job_id == job_id), None)

    def last_progress(self, job_id: int) -> ProgressEvent | None:
        worker = self.find(job_id)
        return self._progress.get(worker) if worker is not None else None

    def stop_all(self, timeout_ms: int) -> bool:
        """Cancels every job and waits for their threads; False if one is still running after the wait."""
        for worker in self._workers:
            worker.cancel()
        return all(worker.wait(timeout_ms) for worker in self._workers)

    def _remember_progress(self, worker: JobWorker, event: ProgressEvent) -> None:
        self._progress[worker] = event

    def _remove_soon(self, worker: JobWorker, *_final_arguments: object) -> None:
        QTimer.singleShot(0, self, functools.partial(self._remove, worker))

    def _remove(self, worker: JobWorker) -> None:
        if worker in self._workers:
            self._workers.remove(worker)
            self._progress.pop(worker, None)
            self.changed.emit()
