"""The Train page's data check as it runs: one at a time, on read threads, newest wins.

`modelai_desktop.training_data` decides (Qt-free, through the engine's own checks); this object
runs it without blocking the window: it reads a polygon file's layer first, so that its options
show and feed the check, then checks the data and draws the rasterised labels over the first
image. A new check cancels one under way, so the report is always that of the latest choice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from engine.errors import EngineError
from engine.labels.cache import label_cache_dir
from engine.labels.preview import label_overlay
from engine.labels.training import LabelSettings
from engine.labels.vector_file import describe_label_file
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.training_data import PairingReport, check_training_data
from modelai_desktop.widgets.label_options import LabelOptions, label_file_in


class TrainingDataCheck(QObject):
    """Checks the chosen images and masks (or polygon file); ``report`` is None while it runs.

    Signals:
        checked(PairingReport): a check ended with this report (not emitted when cancelled).
    """

    checked = Signal(object)

    def __init__(
        self, tasks: BackgroundTasks, home: Path, label_options: LabelOptions, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._home = home
        self._label_options = label_options
        self._task: asyncio.Task[PairingReport] | None = None
        self.report: PairingReport | None = None

    def start(self, task: str, images: list[Path], masks: list[Path]) -> asyncio.Task[PairingReport]:
        """Starts checking this data, replacing a check under way."""
        if self._task is not None:
            self._task.cancel()
        self.report = None
        self._task = self._tasks.start(self._check(task, images, masks), name="check-training-data")
        return self._task

    async def _check(self, task: str, images: list[Path], masks: list[Path]) -> PairingReport:
        labels = await self._read_label_file(task, masks)
        report = (
            await self._tasks.run_blocking(
                check_training_data, task, images, masks, labels, label_cache_dir(self._home)
            )
            if images
            else PairingReport([])
        )
        if labels is not None:
            await self._show_label_preview(report, labels)
        self.report = report
        self.checked.emit(report)
        return report

    async def _read_label_file(self, task: str, masks: list[Path]) -> LabelSettings | None:
        """The label file's options once its layer is read; None for masks (or no readable file)."""
        options = self._label_options
        label_file = label_file_in(masks) if task == "segmentation" else None
        options.setVisible(label_file is not None)
        if label_file is None:
            options.forget()
            return None
        try:
            options.show_layer(await self._tasks.run_blocking(describe_label_file, label_file))
        except EngineError as exc:
            options.forget()
            options.summary.setText(str(exc))
            return None
        return options.settings()

    async def _show_label_preview(self, report: PairingReport, labels: LabelSettings) -> None:
        if not report.usable or report.pairs[0].mask is None:
            self._label_options.show_preview(None)
            return
        pair = report.pairs[0]
        unpainted = (0, 255) if labels.unlabelled == "background" else (255,)
        overlay = await self._tasks.run_blocking(
            label_overlay, pair.image.path, pair.mask.raster.path, unpainted
        )
        self._label_options.show_preview(overlay)
