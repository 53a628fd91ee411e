"""The Label page's loop: train on the labels as they are now, see the model after each epoch, paint
where it is unsure, train again; and predict the whole raster with the latest model.

A training starts from a frozen copy of the labels (written on a read thread), so painting goes
on while it runs; the jobs themselves are `LabelJobs`'. The model each raster's labels trained last
is remembered in its labels folder, so the loop continues after a restart.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from engine.errors import EngineError
from engine.labels.store import save_last_model
from engine.labels.tiles import LabelTiles
from engine.labels.training_set import check_trainable, freeze_labels, label_training_config
from engine.rasters.read import RasterInfo
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.label_jobs import LabelJobs
from modelai_desktop.widgets.label_training import LabelTrainingPanel
from modelai_desktop.workers import JobWorker

if TYPE_CHECKING:
    from modelai_desktop.pages.label_page import LabelPage


class LabelTrainer(QObject):
    """Runs the panel's Train and Predict for the page's raster and says on the panel how they go.

    Signals:
        model_saved(Path): a training wrote this model.
        view_stale(): the live prediction is out of date (a new epoch or model): redraw the view.
        status_message(str): one line for the status bar.
        failed(str): why something could not be done.
    """

    model_saved = Signal(object)
    view_stale = Signal()
    status_message = Signal(str)
    failed = Signal(str)

    def __init__(
        self, page: LabelPage, tasks: BackgroundTasks, home: Path, jobs: LabelJobs, panel: LabelTrainingPanel
    ) -> None:
        super().__init__(page)
        self._page = page
        self._tasks = tasks
        self._home = home
        self._jobs = jobs
        self._panel = panel
        jobs.epoch.connect(self._on_epoch)
        jobs.trained.connect(self._on_trained)
        jobs.ended.connect(self._job_ended)
        panel.train_requested.connect(self.train)
        panel.stop_requested.connect(jobs.cancel)
        panel.predict_requested.connect(self.predict_whole_raster)

    def train(self) -> asyncio.Task[None] | None:
        """Trains a small U-Net on the labels as they are now (refused, with the reason, on one class)."""
        page = self._page
        if page.info is None or page.tiles is None or page.folder is None or self._jobs.running:
            return None
        try:
            check_trainable(page.tiles.class_pixels(), page.classes.classes())
        except EngineError as exc:
            self.failed.emit(str(exc))
            return None
        return self._tasks.start(self._train(page.info, page.tiles.copy(), page.folder), name="label-train")

    async def _train(self, info: RasterInfo, snapshot: LabelTiles, folder: Path) -> None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        classes = self._page.classes.classes()
        try:
            frozen = await self._tasks.run_blocking(
                freeze_labels, folder / "training" / stamp, info, snapshot
            )
        except EngineError as exc:
            self.failed.emit(str(exc))
            return
        panel = self._panel
        start_from = self._jobs.model_path if panel.continue_box.isChecked() else None
        output = self._home / "models" / f"{info.path.stem}-labels-{stamp}.safetensors"
        config = label_training_config(
            frozen, output, classes, panel.epochs.value(), start_from, panel.train_for.currentData()
        )
        self._jobs.train(config)
        panel.set_running(True, self._jobs.model_path is not None)
        panel.state.setText("Training started: the map appears after the first epoch.")
        if panel.overlay_kind() is None:
            panel.set_overlay_kind("margin")

    def predict_whole_raster(self) -> JobWorker | None:
        """The normal prediction job with the latest model; outputs go to the data folder's outputs."""
        info = self._page.info
        worker = self._jobs.predict(info.path) if info is not None else None
        if worker is not None:
            self._panel.set_running(True, True)
            self._panel.state.setText("Predicting the whole raster…")
        return worker

    def _on_epoch(self, event: object) -> None:
        metric = getattr(event, "metrics", {}).get("mean_iou")
        score = f", validation IoU {metric:.2f}" if metric is not None else ""
        self._panel.state.setText(f"Epoch {event.epoch} of {event.epochs}{score}.")
        self.view_stale.emit()

    def _on_trained(self, model: Path) -> None:
        if self._page.folder is not None:
            self._tasks.start(self._remember_model(self._page.folder, model), name="label-last-model")
        self.model_saved.emit(model)
        self.view_stale.emit()

    async def _remember_model(self, folder: Path, model: Path) -> None:
        try:
            await self._tasks.run_blocking(save_last_model, folder, model)
        except EngineError as exc:
            self.failed.emit(str(exc))

    def _job_ended(self, message: str) -> None:
        self._panel.set_running(False, self._jobs.model_path is not None)
        self._panel.state.setText(message)
        self.status_message.emit(message)
