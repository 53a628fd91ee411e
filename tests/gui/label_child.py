"""A Label page in its own process, to be killed: paints two classes, says how many pixels are saved,
then keeps painting until the test kills it (``python -m tests.gui.label_child RASTER``)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from engine.paths import app_home
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.pages.label_page import LabelPage
from modelai_desktop.workers import JobRegistry
from tests.gui.test_label_page import drag, key


async def paint_until_killed(page: LabelPage, raster: Path) -> None:
    await page.open_raster(raster)
    page.canvas.graphics.viewport().setFocus()
    drag(page, (20, 30), (120, 30))
    key(page, Qt.Key.Key_2)
    drag(page, (20, 80), (120, 80))
    while page.autosave.pending():
        await asyncio.sleep(0.05)
    print("saved", sum(page.tiles.class_pixels().values()), flush=True)
    while True:
        await asyncio.sleep(60)


def main() -> None:
    app = QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    page = LabelPage(BackgroundTasks(), app_home(), JobRegistry())
    page.resize(1100, 700)
    page.show()
    with loop:
        loop.run_until_complete(paint_until_killed(page, Path(sys.argv[1])))


if __name__ == "__main__":
    main()
