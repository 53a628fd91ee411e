"""The Train page: choose the data, check it, set up a run, start it and watch it learn.

Data checks are short reads on a read thread (`modelai_desktop.training_data_check`), so the table
of pairs fills while the user keeps working; Start stays disabled while the engine would refuse the
data or the settings. The run itself is a job (`modelai_desktop.train_jobs`) shown on the right:
Stop asks the engine to stop at the next batch (the last epoch's checkpoint stays), and a
cancelled or interrupted run continues with Resume from that checkpoint.
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
from engine.jobs.specs import TrainSpec
from engine.labels.vector_file import FORMATS_TEXT
from engine.training.config import TrainConfig
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.interrupted import plan_resume
from modelai_desktop.model_library import MODEL_SUFFIX
from modelai_desktop.train_jobs import TrainJobs
from modelai_desktop.training_data import EpochPlan, PairingReport, plan_epoch
from modelai_desktop.training_data_check import TrainingDataCheck
from modelai_desktop.widgets.file_drop_area import FileDropArea
from modelai_desktop.widgets.label_options import LabelOptions
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.pairing_table import PROBLEM_COLOR, PairingTable
from modelai_desktop.widgets.pinned_column import pinned_column
from modelai_desktop.widgets.train_settings import TrainSettingsForm, device_choices
from modelai_desktop.widgets.training_run_view import TrainingRunView
from modelai_desktop.workers import JobRegistry

log = logging.getLogger(__name__)

SEGMENTATION, ANOMALY = "segmentation", "anomaly"
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
            "Drop one mask per image (named like it, or <name>_mask.tif), or one polygon file.",
            file_filter=MASK_OR_LABEL_FILTER,
        )
        self.masks_area.setToolTip(
            "Masks: one GeoTIFF of class ids per image, lined up with it and named like it or\n"
            f"<name>_mask.tif. Polygons: one file, {FORMATS_TEXT}."
        )
        for area in (self.images_area, self.masks_area):
            area.paths_changed.connect(self._on_data_changed)
        self.label_options = LabelOptions()
        self.label_options.changed.connect(self._on_data_changed)
        self.label_options.hide()
        self.data_check = TrainingDataCheck(tasks, home, self.label_options, self)
        self.data_check.checked.connect(self._on_checked)
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
        self.resume_button.clicked.connect(lambda: self.resume_job(self.training_jobs.resumable_job))

        self.run_view = TrainingRunView()
        self.training_jobs = TrainJobs(home, jobs, self.run_view, self.banner, self)
        self.training_jobs.model_saved.connect(self.model_saved)
        self.training_jobs.status_message.connect(self.status_message)
        self.training_jobs.ended.connect(self._on_job_ended)

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
        return self.training_jobs.running

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
        check = self.data_check.start(self.task(), self.images_area.paths(), self.masks_area.paths())
        self._update_readiness()
        return check

    def _on_checked(self, report: PairingReport) -> None:
        self.pairing_table.set_rows(report.rows)
        if self._output_is_default():
            self._name_model_by_default()
        self._update_readiness()

    def blocking_problem(self) -> str:
        """Why Start is disabled now ("" when it is not); the engine's own checks decide."""
        if self.training_jobs.running:
            return "A training job runs from this page; stop it or wait for it to end."
        if not self.images_area.paths():
            return "Add training images: drop files or a folder on Images."
        report = self.data_check.report
        if report is None:
            return "Checking the training data…"
        if report.blocking:
            return report.blocking
        try:
            config = self._config()
            select_bands(report.pairs, config.bands)
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
        self.training_jobs.start(TrainSpec(config), [], parent_job_id=None)
        self._update_readiness()
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

    def resume_job(self, job_id: int | None) -> asyncio.Task[None] | None:
        """Continues a cancelled or interrupted training job from its checkpoint, as a new job."""
        if job_id is None or self.training_jobs.running:
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
        self.training_jobs.start(plan.spec, plan.epochs, parent_job_id=job_id)
        self._update_readiness()
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

    def _on_job_ended(self) -> None:
        # The name just used now exists: the next run moves on to a free name, whoever chose this one.
        self._default_output = self.settings.output.text()
        self._update_readiness()

    def _plan(self, config: TrainConfig) -> EpochPlan:
        """How the checked pairs split into patches per epoch with these settings (raises EngineError)."""
        return plan_epoch(
            self.data_check.report.pairs,
            config.patch,
            config.batch_size,
            config.val_fraction,
            config.val_side,
            config.patches_per_epoch,
            config.seed,
        )

    def _plan_text(self) -> str:
        report = self.data_check.report
        if report is None or not report.usable:
            return ""
        try:
            config = self._config()
            plan = self._plan(config)
        except EngineError:
            return ""
        return f"Each epoch: {plan.patches} patches in {plan.batches} batches; {plan.validation}. "

    def _update_readiness(self) -> None:
        running = self.training_jobs.running
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
        resumable = self.training_jobs.resumable_job is not None
        self.resume_button.setVisible(resumable)
        self.resume_button.setEnabled(resumable and not running)
        self.masks_area.setVisible(self.task() == SEGMENTATION)
        self.readiness_label.setHidden(running)
        if running:
            self.readiness_label.setText("")
        elif problem:
            self.readiness_label.setText(f"<span style='color:{PROBLEM_COLOR}'>{problem}</span>")
        else:
            report = self.data_check.report
            count = len(report.pairs) if report else 0
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
