"""Autosave of painted labels: within about a second of a stroke, on a read thread, never half-written.

The GUI thread only copies the touched tiles (a fast memory copy); the GeoTIFF is written on a read
thread through `engine.labels.store`, which renames a complete file over the old one. One save runs
at a time; strokes made meanwhile are saved by the next one, so at most the last second or two of
painting is lost to a crash or a kill.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine.errors import EngineError
from engine.labels.store import CLASSES_NAME, MASK_NAME, LabelClass, save_classes, save_mask
from engine.labels.tiles import LabelTiles
from engine.rasters.read import RasterInfo
from modelai_desktop.async_tasks import BackgroundTasks

log = logging.getLogger(__name__)

SAVE_DELAY_MS = 800


class LabelAutosave(QObject):
    """Saves one raster's labels and classes into its labels folder after every change.

    Signals:
        saved(str): the mask was written (its path).
        failed(str): a save failed; the message says why and what to do.
    """

    saved = Signal(str)
    failed = Signal(str)

    def __init__(self, tasks: BackgroundTasks, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._timer = QTimer(self, singleShot=True, interval=SAVE_DELAY_MS)
        self._timer.timeout.connect(self._start_save)
        self._target: tuple[Path, RasterInfo, LabelTiles, Callable[[], list[LabelClass]]] | None = None
        self._saved_version = -1
        self._classes_changed = False
        self._running: asyncio.Task[None] | None = None

    def attach(
        self, folder: Path, info: RasterInfo, tiles: LabelTiles, classes: Callable[[], list[LabelClass]]
    ) -> None:
        """Follows the labels of another raster (its earlier labels are assumed saved)."""
        self._target = (folder, info, tiles, classes)
        self._saved_version = tiles.version
        self._classes_changed = False

    def changed(self, classes_too: bool = False) -> None:
        """Labels (and maybe classes) changed: save soon. Repeated calls do not postpone the save."""
        self._classes_changed |= classes_too
        if not self._timer.isActive():
            self._timer.start()

    def pending(self) -> bool:
        """True while something painted is not on disk yet."""
        target = self._target
        unsaved = target is not None and (target[2].version != self._saved_version or self._classes_changed)
        return unsaved or self._timer.isActive() or self._running is not None

    async def flush(self) -> None:
        """Saves now and returns once everything painted so far is on disk."""
        self._timer.stop()
        while self._running is not None:
            await asyncio.shield(self._running)
        if self.pending():
            self._running = self._tasks.start(self._save(), name="label-autosave")
            await asyncio.shield(self._running)

    def _start_save(self) -> None:
        if self._running is not None:
            self._timer.start()
            return
        self._running = self._tasks.start(self._save(), name="label-autosave")

    async def _save(self) -> None:
        try:
            if self._target is None:
                return
            folder, info, tiles, classes = self._target
            snapshot, names = tiles.copy(), classes()
            classes_changed, self._classes_changed = self._classes_changed, False
            try:
                await self._tasks.run_blocking(save_mask, folder / MASK_NAME, info, snapshot, names)
                if classes_changed or not (folder / CLASSES_NAME).is_file():
                    await self._tasks.run_blocking(save_classes, folder / CLASSES_NAME, info.path, names)
            except EngineError as exc:
                log.warning("Autosave failed: %s", exc)
                self._classes_changed |= classes_changed
                self.failed.emit(str(exc))
                return
            if self._target is not None and self._target[2] is tiles:
                self._saved_version = snapshot.version
            self.saved.emit(str(folder / MASK_NAME))
        finally:
            self._running = None
