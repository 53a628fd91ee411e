"""The Train page: choose the data, check it, set up a run, start it and watch it learn.

Data checks are short reads (a coroutine awaiting `modelai_desktop.training_data` on a read
thread), so the table of pairs fills while the user keeps working; Start stays disabled while the
engine would refuse the data or the settings. A run is a `JobWorker` (the engine's runner on a
QThread): its signals feed the progress bar, the loss curves and the sample view, Stop asks the
engine to stop at the next batch (the last epoch's checkpoint stays), and a cancelled or
interrupted run continues with Resume from that checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.datasets import select_bands
from engine.errors import EngineError
from engine.jobs.records import EpochRecord
from engine.jobs.runner import JobOutcome
from engine.jobs.specs import TrainSpec
from engine.labels.cache import label_cache_dir
from engine.labels.preview import label_overlay
from engine.labels.training import LabelSettings
from engine.labels.vector_file import describe_label_file
from engine.training.config import TrainConfig
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.interrupted import plan_resume
from modelai_desktop.training_data import EpochPlan, PairingReport, check_training_data, plan_epoch
from modelai_desktop.widgets.file_drop_area import FileDropArea
from modelai_desktop.widgets.label_options import LabelOptions, label_file_in
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.pairing_table import PROBLEM_COLOR, PairingTable
from modelai_desktop.widgets.pinned_column import pinned_column
from modelai_desktop.widgets.train_settings import TrainSettingsForm, device_choices
from modelai_desktop.widgets.training_run_view import TrainingRunView
from modelai_desktop.workers import JobRegistry, JobWorker

log = logging.getLogger(__name__)

SEGMENTATION, ANOMALY = "segmentation", "anomaly"
MODEL_SUFFIX = ".safetensors"
WAITING_PREFIX = "Waiting for job"
LEFT_PANEL_WIDTH = 500
# The least the setup column may be given, so that the page fits a 1024 × 700 screen beside the
# run's curves; its content wraps or scrolls vertically below that, never sideways.
LEFT_PANEL_MIN_WIDTH = 370
MASK_OR_LABEL_FILTER = (
    "Masks or polygons (*.tif *.tiff *.gpkg *.shp *.zip *.geojson *.json *.fgb);;All files (*)"
)


def default_model_path(models_dir: Path, task: str, images: list[Path]) -> Path:
    """``<models>/<task>-<first image or folder name>.safetensors``, numbered when it exists."""
    base = f"{task}-{images[0].stem}" if images else task
    candidate = models_dir / f"{base}{MODEL_SUFFIX}"
    number = 2
    while candidate.exists():
        candidate = models_dir / f"{base}-{number}{MODEL_SUFFIX}"
        number += 1
    return candidate


class TrainPage(QWidget):
    """Data and settings on the left, the run's progress, curves and sample on the right.

    Signals:
        model_saved(Path): a training job wrote this model file (the Models page lists it).
        status_message(str): one line for the status bar.
        training_started(TrainConfig): a new training started with these settings (remembered).
    """

    model_saved = Signal(Path)
    status_message = Signal(str)
    training_started = Signal(object)

    def __init__(
        self, tasks: BackgroundTasks, home: Path, jobs: JobRegistry, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._home = home
        self._jobs = jobs
        self._report: PairingReport | None = None
        self._check_task: asyncio.Task[PairingReport] | None = None
        self._worker: JobWorker | None = None
        self._resumable_job: int | None = None
        self._default_output: str | None = None
        self._shown_problem = ""

        self.banner = MessageBanner()
        self.segmentation_button = QRadioButton("Segmentation (images + masks)")
        self.segmentation_button.setToolTip("Learn to label every pixel with a class from masks you made.")
        self.anomaly_button = QRadioButton("Anomaly detection (images only)")
        self.anomaly_button.setToolTip(
            "Learn what normal looks like from images without anomalies; anything unlike them stands out."
        )
        self.task_group = QButtonGroup(self)
        self.task_group.addButton(self.segmentation_button)
        self.task_group.addButton(self.anomaly_button)
        self.segmentation_button.setChecked(True)
        self.segmentation_button.toggled.connect(self._on_task_changed)
        self.images_area = FileDropArea("Images", "Drop training images or a folder of them here.")
        self.masks_area = FileDropArea(
            "Masks or labels",
            "Drop the masks here: one per image, named like it (or <name>_mask.tif). Or one polygon "
            "file: GeoPackage, Shapefile (.shp or .zip), GeoJSON or FlatGeobuf.",
            file_filter=MASK_OR_LABEL_FILTER,
        )
        for area in (self.images_area, self.masks_area):
            area.paths_changed.connect(self._on_data_changed)
        self.label_options = LabelOptions()
        self.label_options.changed.connect(self._on_data_changed)
        self.label_options.hide()
        self.pairing_table = PairingTable()
        self.pairing_table.setMinimumHeight(110)
        self.readiness_label = QLabel()
        self.readiness_label.setWordWrap(True)
        self.settings = TrainSettingsForm()
        self.settings.changed.connect(self._update_readiness)
        self.estimate_label = QLabel()
        self.estimate_label.setWordWrap(True)
        self.estimate_label.setToolTip("How much one epoch holds, and how long it takes once measured")
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.start_button.clicked.connect(self.start_training)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the stopped run from its last checkpoint")
        self.resume_button.clicked.connect(lambda: self.resume_job(self._resumable_job))

        self.run_view = TrainingRunView()
        self.run_view.stop_requested.connect(self.stop_training)

        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._build_setup_panel())
        splitter.addWidget(self.run_view)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([LEFT_PANEL_WIDTH, 630])
        splitter.setChildrenCollapsible(False)
        layout.addWidget(splitter, 1)
        self._update_readiness()

    def _build_setup_panel(self) -> QWidget:
        """The data and settings scroll; the readiness, the estimate and Start stay in view below."""
        task_row = QVBoxLayout()
        task_row.setSpacing(2)
        task_row.addWidget(self.segmentation_button)
        task_row.addWidget(self.anomaly_button)
        areas = QHBoxLayout()
        areas.addWidget(self.images_area)
        areas.addWidget(self.masks_area)
        settings_box = QGroupBox("Settings")
        QVBoxLayout(settings_box).addWidget(self.settings)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.resume_button)
        buttons.addStretch(1)
        panel = QWidget()
        column = QVBoxLayout(panel)
        column.setContentsMargins(0, 0, 8, 0)
        column.addWidget(_title("Task"))
        column.addLayout(task_row)
        column.addWidget(_title("Training data"))
        column.addLayout(areas)
        column.addWidget(self.label_options)
        column.addWidget(self.pairing_table)
        column.addWidget(settings_box)
        column.addStretch(1)
        pinned = [self.readiness_label, self.estimate_label, buttons]
        return pinned_column(panel, pinned, LEFT_PANEL_MIN_WIDTH, right_margin=8)

    def task(self) -> str:
        return SEGMENTATION if self.segmentation_button.isChecked() else ANOMALY

    def is_running(self) -> bool:
        return self._worker is not None

    def start_background_reads(self) -> asyncio.Task[None]:
        """The read the page needs once the loop runs: the devices to train on."""
        return self._tasks.start(self._startup_reads(), name="train-page-startup")

    async def _startup_reads(self) -> None:
        self.settings.set_devices(await self._tasks.run_blocking(device_choices))

    def set_data(self, task: str, images: list[Path], masks: list[Path] | None = None) -> None:
        """Chooses the task and the training files, as drops on the page would."""
        (self.segmentation_button if task == SEGMENTATION else self.anomaly_button).setChecked(True)
        self.masks_area.set_paths(masks or [])
        self.images_area.set_paths(images)

    def check_data(self) -> asyncio.Task[PairingReport]:
        """Starts checking the chosen data again, replacing a check under way."""
        if self._check_task is not None:
            self._check_task.cancel()
        self._report = None
        self._check_task = self._tasks.start(self._check(), name="check-training-data")
        return self._check_task

    async def _check(self) -> PairingReport:
        task, images, masks = self.task(), self.images_area.paths(), self.masks_area.paths()
        self._update_readiness()
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
        self._report = report
        self.pairing_table.set_rows(report.rows)
        if self._output_is_default():
            self._name_model_by_default()
        self._update_readiness()
        return report

    async def _read_label_file(self, task: str, masks: list[Path]) -> LabelSettings | None:
        """The label file's options once its layer is read; None for masks (or no readable file)."""
        label_file = label_file_in(masks) if task == SEGMENTATION else None
        self.label_options.setVisible(label_file is not None)
        if label_file is None:
            self.label_options.forget()
            return None
        try:
            self.label_options.show_layer(await self._tasks.run_blocking(describe_label_file, label_file))
        except EngineError as exc:
            self.label_options.forget()
            self.label_options.summary.setText(str(exc))
            return None
        return self.label_options.settings()

    async def _show_label_preview(self, report: PairingReport, labels: LabelSettings) -> None:
        if not report.usable or report.pairs[0].mask is None:
            self.label_options.show_preview(None)
            return
        pair = report.pairs[0]
        unpainted = (0, 255) if labels.unlabelled == "background" else (255,)
        overlay = await self._tasks.run_blocking(
            label_overlay, pair.image.path, pair.mask.raster.path, unpainted
        )
        self.label_options.show_preview(overlay)

    def blocking_problem(self) -> str:
        """Why Start is disabled now ("" when it is not); the engine's own checks decide."""
        if self._worker is not None:
            return "A training job runs from this page; stop it or wait for it to end."
        if not self.images_area.paths():
            return "Add training images: drop files or a folder on Images."
        if self._report is None:
            return "Checking the training data…"
        if self._report.blocking:
            return self._report.blocking
        try:
            config = self._config()
            select_bands(self._report.pairs, config.bands)
            self._plan(config)
        except EngineError as exc:
            return str(exc)
        if config.output.exists():
            return f"{config.output} already exists: choose another name under Save model as."
        return ""

    def start_training(self) -> None:
        """Starts a training job with the chosen data and settings (Start is only enabled when it can)."""
        problem = self.blocking_problem()
        if problem:
            self.banner.show_message(problem)
            self._shown_problem = problem
            return
        config = self._config()
        self._start_job(TrainSpec(config), [], parent_job_id=None)
        self.training_started.emit(config)

    def restore_settings(self, config: TrainConfig) -> None:
        """Fills the page with an earlier training's data (what still exists) and settings; the
        model name moves on to a free one if that model exists now."""
        images = [path for path in config.images if path.exists()]
        masks = [path for path in config.masks or [] if path.exists()]
        self.set_data(config.task, images, masks)
        self.settings.show_config(config)
        self._default_output = self.settings.output.text()
        self._update_readiness()

    def stop_training(self) -> None:
        """Asks the run to stop after the current batch; the last finished epoch's checkpoint stays."""
        if self._worker is not None:
            self._worker.cancel()
            self.run_view.show_status(f"Job {self._worker.job_id}: stopping after the current batch…")

    def resume_job(self, job_id: int | None) -> asyncio.Task[None] | None:
        """Continues a cancelled or interrupted training job from its checkpoint, as a new job."""
        if job_id is None or self._worker is not None:
            return None
        self.resume_button.setEnabled(False)
        return self._tasks.start(self._resume(job_id), name="resume-training")

    async def _resume(self, job_id: int) -> None:
        try:
            plan = await self._tasks.run_blocking(plan_resume, self._home, job_id)
        except EngineError as exc:
            self.banner.show_message(str(exc))
            self._update_readiness()
            return
        self._show_config(plan.spec.config)
        self._start_job(plan.spec, plan.epochs, parent_job_id=job_id)
        if plan.spec.config.resume is None:
            self.run_view.show_status(
                f"Job {job_id} stopped before its first checkpoint: training it again from epoch 1…"
            )

    def _config(self) -> TrainConfig:
        config = self.settings.make_config(self.task(), self.images_area.paths(), self.masks_area.paths())
        labels = self.label_options.settings() if self.label_options.isVisibleTo(self) else None
        if config.task != SEGMENTATION or labels is None:
            return config
        return replace(
            config,
            masks=None,
            labels=labels.path,
            label_layer=labels.layer,
            label_field=labels.field,
            unlabelled=labels.unlabelled,
            all_touched=labels.all_touched,
        )

    def _output_is_default(self) -> bool:
        """True while "Save model as" holds a name the page chose (or nothing), not the user's."""
        text = self.settings.output.text()
        return not text.strip() or text == self._default_output

    def _name_model_by_default(self) -> None:
        """Puts the first free ``<task>-<image>[-N]`` name into "Save model as"."""
        path = default_model_path(self._home / "models", self.task(), self.images_area.paths())
        self._default_output = str(path)
        self.settings.output.setText(self._default_output)

    def _show_config(self, config: TrainConfig) -> None:
        self.set_data(config.task, config.images, [config.labels] if config.labels else config.masks)
        self.settings.show_config(config)

    def _start_job(self, spec: TrainSpec, history: list[EpochRecord], parent_job_id: int | None) -> None:
        config = spec.config
        worker = JobWorker(spec, self._home, parent_job_id=parent_job_id)
        worker.started.connect(self._on_started)
        worker.progress.connect(self.run_view.show_progress)
        worker.epoch.connect(self.run_view.show_epoch)
        worker.message.connect(self._on_message)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        self._jobs.add(worker)
        self._resumable_job = None
        self.banner.hide()
        what = "Resuming" if parent_job_id is not None else "Starting"
        self.run_view.start(f"{what} {config.task} training…", config.epochs, history)
        self.run_view.sample_view.set_classes(config.class_names or [], config.class_colors or [])
        self._update_readiness()
        worker.start()

    def _on_started(self, job_id: int) -> None:
        self.run_view.show_status(f"Job {job_id}: {self._worker.spec.config.task} training")

    def _on_message(self, level: str, text: str) -> None:
        if text.startswith(WAITING_PREFIX):
            job = f"Job {self._worker.job_id}" if self._worker and self._worker.job_id else "This job"
            self.run_view.show_status(f"{job} is queued until the running job ends.")
            self.run_view.show_waiting(text)
        elif level == "warning":
            self.banner.show_message(text)
        self.status_message.emit(text)

    def _on_finished(self, outcome: JobOutcome) -> None:
        model = Path(outcome.result["model"])
        self.run_view.finish(f"Job {outcome.job_id} succeeded: the model is saved as {model.name}.", "Done")
        self._end_job()
        self.model_saved.emit(model)
        self.status_message.emit(f"Training finished; model saved to {model}.")

    def _on_failed(self, message: str, _detail: str) -> None:
        job_id = self._worker.job_id if self._worker else None
        self.run_view.finish(f"Job {job_id} failed." if job_id else "The training could not start.", "Failed")
        self.banner.show_message(message)
        self._end_job()

    def _on_cancelled(self, message: str) -> None:
        job_id = self._worker.job_id if self._worker else None
        self.run_view.finish(
            f"Job {job_id} cancelled. Resume continues from its last finished epoch.", "Cancelled"
        )
        self.status_message.emit(message)
        self._resumable_job = job_id
        self._end_job()

    def _end_job(self) -> None:
        """Lets the ended worker go; deleted later, because this runs inside its own final signal."""
        if self._worker is not None:
            self._worker.wait()
            self._worker.deleteLater()
        self._worker = None
        # The name just used now exists: the next run moves on to a free name, whoever chose this one.
        self._default_output = self.settings.output.text()
        self._update_readiness()

    def _plan(self, config: TrainConfig) -> EpochPlan:
        """How the checked pairs split into patches per epoch with these settings (raises EngineError)."""
        return plan_epoch(
            self._report.pairs,
            config.patch,
            config.batch_size,
            config.val_fraction,
            config.patches_per_epoch,
            config.seed,
        )

    def _plan_text(self) -> str:
        if self._report is None or not self._report.usable:
            return ""
        try:
            config = self._config()
            plan = self._plan(config)
        except EngineError:
            return ""
        return f"Each epoch: {plan.patches} patches in {plan.batches} batches; {plan.validation}. "

    def _update_readiness(self) -> None:
        running = self._worker is not None
        output = self.settings.output_path()
        if not running and self._output_is_default() and output is not None and output.exists():
            self._name_model_by_default()  # emits settings.changed, which calls this again
            return
        problem = self.blocking_problem()
        if self._shown_problem and self._shown_problem != problem:
            if self.banner.text() == self._shown_problem:
                self.banner.hide()  # the problem it named is fixed
            self._shown_problem = ""
        self.start_button.setEnabled(not problem)
        self.resume_button.setVisible(self._resumable_job is not None)
        self.resume_button.setEnabled(self._resumable_job is not None and not running)
        self.masks_area.setVisible(self.task() == SEGMENTATION)
        self.readiness_label.setHidden(running)
        if running:
            self.readiness_label.setText("")
        elif problem:
            self.readiness_label.setText(f"<span style='color:{PROBLEM_COLOR}'>{problem}</span>")
        else:
            count = len(self._report.pairs) if self._report else 0
            self.readiness_label.setText(f"Ready: {count} image{'s' if count != 1 else ''} to train on.")
        if not running:
            plan = self._plan_text()
            measured = self.run_view.measured.replace("About", "Last run: about", 1)
            self.estimate_label.setText(f"Estimate: {plan}{measured}" if plan else measured)

    def _on_task_changed(self) -> None:
        self.check_data()

    def _on_data_changed(self) -> None:
        self.check_data()


def _title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("sectionTitle")
    return label
