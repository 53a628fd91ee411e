"""Garbage is collected on the GUI thread only, even when a worker thread allocates a lot."""

from __future__ import annotations

import gc
import threading

from modelai_desktop.gui_thread_gc import GuiThreadCollector


class Cyclic:
    """Cyclic garbage that records the thread that collected it."""

    collected_in: list[str] = []  # noqa: RUF012 (a shared record is the point)

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        Cyclic.collected_in.append(threading.current_thread().name)


def test_a_worker_thread_allocating_never_collects_and_the_gui_thread_does(qapp, qtbot) -> None:
    collector = GuiThreadCollector(qapp, interval_ms=20)
    try:
        assert not gc.isenabled()
        gc.collect()
        Cyclic.collected_in.clear()

        kept: list[list[int]] = []

        def allocate() -> None:
            for _ in range(20):
                Cyclic()
            kept.extend([] for _ in range(5_000))  # live containers: past the youngest threshold

        worker = threading.Thread(target=allocate, name="job-worker")
        worker.start()
        worker.join()
        assert Cyclic.collected_in == [], "nothing is collected in the worker thread"
        qtbot.waitUntil(lambda: len(Cyclic.collected_in) == 20, timeout=10_000)
        assert set(Cyclic.collected_in) == {threading.main_thread().name}
    finally:
        collector.stop()
    assert gc.isenabled()
