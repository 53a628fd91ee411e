"""Python's cyclic garbage collector, run on the GUI thread only.

Automatic collection runs in whichever thread happens to allocate when a threshold is crossed. When
that is a job's worker thread and the garbage holds Qt objects (a finished worker, a page's old
view items), Qt deletes them from the wrong thread and can crash the whole process: a segmentation
fault seen in a training job's thread, inside plain Python code, while the Label page refreshed.
So automatic collection is switched off and a timer on the GUI thread collects instead (the approach
pyqtgraph documents for its own users).
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer

COLLECT_INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Collects garbage on a timer of the thread it lives in (the GUI thread), never elsewhere.

    It collects the oldest generation whose allocation count passed the interpreter's threshold,
    as automatic collection would, so the cost per tick stays what Python would have spent anyway.
    """

    def __init__(self, parent: QObject | None = None, interval_ms: int = COLLECT_INTERVAL_MS) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.collect_due)
        self._timer.start(interval_ms)

    def collect_due(self) -> int:
        """Runs the collection that is due, if any; returns the number of unreachable objects found."""
        counts = gc.get_count()
        due = -1
        for generation, (count, threshold) in enumerate(zip(counts, self._thresholds, strict=True)):
            if count <= threshold:
                break
            due = generation
        return gc.collect(due) if due >= 0 else 0

    def stop(self) -> None:
        """Gives collection back to the interpreter (automatic, in any thread)."""
        self._timer.stop()
        gc.enable()
