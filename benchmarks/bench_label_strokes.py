"""Does painting on the Label page lag while a training job runs? Stroke handling time, idle against training.

The Label page (offscreen, a 1024² synthetic scene) gets brush strokes as real mouse events
(QTest on the canvas's viewport): each mouse move is timed from its dispatch to the end of its
handling on the GUI thread (the label tiles painted and the visible labels redrawn), and the event
loop's latency is timed with zero-delay timers between strokes (how long a click waits before the
GUI thread gets to it). Both are measured with nothing else running, then while the page's own
"Train on my labels" job runs (default settings except a long epoch count, so it runs throughout).

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_label_strokes.py [--strokes 40]

Prints medians and 95th percentiles in milliseconds, the ratios training/idle, and the CPU flags.
About 16 ms is one frame at 60 Hz; people notice lag from about 50-100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import qasync
from PySide6.QtCore import QPointF, Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from engine.device import describe_cpu_vectors
from engine.synthetic import write_scene
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.pages.label_page import LabelPage
from modelai_desktop.workers import JobRegistry

MOVES_PER_STROKE = 20
SCENE = 1024
TRAINING_START_TIMEOUT_S = 300


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def loop_latency_ms() -> float:
    """Milliseconds from asking for a zero-delay timer to its running on the GUI thread."""
    fired = asyncio.get_running_loop().create_future()
    asked = time.perf_counter()
    QTimer.singleShot(0, lambda: fired.done() or fired.set_result(time.perf_counter()))
    return (await fired - asked) * 1000


async def strokes(page: LabelPage, count: int) -> tuple[list[float], list[float]]:
    """Paints ``count`` strokes; returns per-move handling times and loop latencies (ms)."""
    viewport = page.canvas.graphics.viewport()
    moves, latencies = [], []
    for index in range(count):
        page.classes.select(index % 2)  # both classes painted, so the labels can be trained on
        row = 40 + (index * 23) % (SCENE - 80)
        points = [
            page.canvas.graphics.mapFromScene(page.canvas.viewbox.mapViewToScene(QPointF(col, row)))
            for col in range(40, 40 + 30 * MOVES_PER_STROKE, 30)
        ]
        QTest.mousePress(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[0])
        for point in points[1:]:
            started = time.perf_counter()
            QTest.mouseMove(viewport, point)
            moves.append((time.perf_counter() - started) * 1000)
        QTest.mouseRelease(viewport, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, points[-1])
        latencies.append(await loop_latency_ms())
        await asyncio.sleep(0.05)
    return moves, latencies


def describe(name: str, values: list[float]) -> str:
    return f"{name:28s} median {statistics.median(values):7.2f} ms   p95 {percentile(values, 0.95):7.2f} ms"


async def measure(folder: Path, count: int) -> None:
    scene = write_scene(folder / "scene", "scene", size=(SCENE, SCENE), seed=3)
    tasks, jobs = BackgroundTasks(), JobRegistry()
    page = LabelPage(tasks, folder / "home", jobs)
    page.resize(1280, 800)
    page.show()
    await page.open_raster(scene.image)
    while page.canvas.visible_window() is None:
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)
    idle_moves, idle_latency = await strokes(page, count)
    page.training.train_for.setCurrentIndex(0)  # epochs: the job must outlast the measurement
    page.training.epochs.setValue(200)
    page.training.train_button.click()
    deadline = time.monotonic() + TRAINING_START_TIMEOUT_S
    while page.label_jobs.worker is None or page.live_prediction is None:
        if time.monotonic() > deadline:
            raise SystemExit(f"No epoch ended within {TRAINING_START_TIMEOUT_S} s: {page.banner.text()}")
        await asyncio.sleep(0.1)  # measured once the job trains and its overlay is refreshed per epoch
    busy_moves, busy_latency = await strokes(page, count)
    still_training = page.label_jobs.worker is not None
    jobs.stop_all(10_000)
    await tasks.aclose()
    print(f"CPU: {describe_cpu_vectors()}, {os.cpu_count()} threads")
    print(f"{count} strokes of {MOVES_PER_STROKE} mouse moves each")
    print(describe("mouse move, idle", idle_moves))
    print(describe("mouse move, training", busy_moves))
    print(describe("event loop latency, idle", idle_latency))
    print(describe("event loop latency, training", busy_latency))
    moves = statistics.median(busy_moves) / statistics.median(idle_moves)
    latency = statistics.median(busy_latency) / statistics.median(idle_latency)
    print(f"ratio training/idle (median): moves {moves:.2f}x, loop latency {latency:.2f}x")
    if not still_training:
        print("warning: the training job ended before the measurement did; raise the epochs")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--strokes", type=int, default=40)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as folder:
        loop.run_until_complete(measure(Path(folder), args.strokes))


if __name__ == "__main__":
    main()
