"""The Predict page: apply a model to rasters, follow the job, and see the result over the preview.

The model's metadata and the added rasters are read as coroutines on read threads; the prediction
itself is a `JobWorker` job, recorded in the job store like ``modelai predict``. Errors the user can
fix (a raster whose bands the model does not know, an output folder that already holds results)
come back from the engine with their fix and are shown in the banner; the page stays usable. When a
job ends, each raster's main output is read at preview size and drawn over the preview in the same
colours as the legend.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QCheckBox,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from engine.errors import EngineError
from engine.inference.predict import PredictionResult
from engine.jobs.runner import JobOutcome
from engine.jobs.specs import PredictSpec
from engine.models.file import read_metadata
from engine.rasters.read import RasterInfo
from modelai_desktop import file_dialogs
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.model_library import OPEN_MODEL_FILTER
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.model_details import describe_model
from modelai_desktop.widgets.pinned_column import pinned_column
from modelai_desktop.widgets.predict_options import PredictOptionsForm
from modelai_desktop.widgets.progress_panel import ProgressPanel, format_duration
from modelai_desktop.widgets.raster_choice import RasterChoice
from modelai_desktop.widgets.raster_list import RasterListModel
from modelai_desktop.widgets.raster_view import RasterView
from modelai_desktop.widgets.result_legend import ResultLayer, ResultLegend, render_result
from modelai_desktop.workers import JobRegistry, JobWorker

NO_MODEL_TEXT = "No model chosen. Choose a .safetensors file, or drop one on the window."
EMPTY_PREVIEW_TEXT = "Add rasters on the Data page or with “Add files…”, then select them here."
DEFAULT_OPACITY = 60
LEFT_MIN_WIDTH = 330
MISSING_PREFIX = "To predict, "
LOG_HINT = "Details are in the log file (Help → Open Log Folder)."


def default_output_dir(home: Path) -> Path:
    """A new ``<home>/outputs/<date-time>`` folder name that does not exist yet."""
    base = home / "outputs" / time.strftime("%Y%m%d-%H%M%S")
    candidate, suffix = base, 2
    while candidate.exists():
        candidate, suffix = base.with_name(f"{base.name}-{suffix}"), suffix + 1
    return candidate


class PredictPage(QWidget):
    """Model, rasters, output folder and options on the left; the preview with its result on the right.

    Signals:
        status_message(str): one line for the status bar.
    """

    status_message = Signal(str)

    def __init__(
        self,
        tasks: BackgroundTasks,
        home: Path,
        data_rasters: RasterListModel,
        jobs: JobRegistry,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._home = home
        self._jobs = jobs
        self._results: dict[Path, PredictionResult] = {}
        self._layers: dict[Path, ResultLayer] = {}
        self._model_path: Path | None = None
        self._output_is_default = True
        self._shown_task: asyncio.Task[None] | None = None
        self.worker: JobWorker | None = None
        self._started_at = 0.0
        self.last_output_dir: Path | None = None

        self.banner = MessageBanner()
        self.view = RasterView(tasks)
        self.view.show_placeholder(EMPTY_PREVIEW_TEXT)
        self.legend = ResultLegend()
        self.progress = ProgressPanel()
        self.progress.cancel_requested.connect(self.cancel)
        self.options = PredictOptionsForm()
        self.rasters = RasterChoice(tasks, data_rasters)
        self.rasters.selection_changed.connect(self._update_run_button)
        self.rasters.current_changed.connect(self._on_current_changed)
        self.rasters.refused.connect(self.banner.show_message)

        controls = QWidget()
        column = QVBoxLayout(controls)
        column.addWidget(self._model_box())
        column.addWidget(self.rasters, 1)
        column.addWidget(self._output_box())
        options_box = QGroupBox("Options")
        QVBoxLayout(options_box).addWidget(self.options)
        column.addWidget(options_box)
        self.run_button = QPushButton("Predict")
        self.run_button.setDefault(True)
        self.run_button.setMinimumHeight(34)
        self.run_button.clicked.connect(self.start_prediction)
        left = pinned_column(controls, [self.run_button, self.progress], LEFT_MIN_WIDTH)

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self._result_panel())
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([380, 800])
        splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addWidget(splitter, 1)

        self._update_run_button()
        self._on_current_changed(self.rasters.current())

    def _model_box(self) -> QGroupBox:
        self.model_label = QLabel(NO_MODEL_TEXT)
        self.model_label.setWordWrap(True)
        self.model_label.setTextFormat(Qt.TextFormat.RichText)
        choose = QPushButton("Choose model…")
        choose.clicked.connect(self.choose_model)
        box = QGroupBox("Model")
        layout = QVBoxLayout(box)
        layout.addWidget(self.model_label)
        layout.addWidget(choose, 0, Qt.AlignmentFlag.AlignLeft)
        return box

    def _output_box(self) -> QGroupBox:
        self.output_edit = QLineEdit(str(default_output_dir(self._home)))
        self.output_edit.setToolTip(
            "The folder that receives the outputs; it is created if needed. After a run it shows the "
            "folder the results went to; a new default folder is chosen when the next run starts."
        )
        self.output_edit.textEdited.connect(self._on_output_edited)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self.choose_output_dir)
        box = QGroupBox("Output folder")
        layout = QHBoxLayout(box)
        layout.addWidget(self.output_edit, 1)
        layout.addWidget(browse)
        return box

    def _result_panel(self) -> QWidget:
        self.show_result = QCheckBox("Show result")
        self.show_result.setChecked(True)
        self.show_result.toggled.connect(self.view.set_overlay_visible)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(DEFAULT_OPACITY)
        self.opacity.setMaximumWidth(180)
        self.opacity.setToolTip("Opacity of the result over the raster")
        self.opacity.valueChanged.connect(self._redraw_overlay)
        self.open_folder = QPushButton("Open output folder")
        self.open_folder.clicked.connect(self.open_output_folder)
        bar = QHBoxLayout()
        bar.addWidget(self.show_result)
        bar.addWidget(QLabel("Opacity"))
        bar.addWidget(self.opacity)
        bar.addStretch(1)
        bar.addWidget(self.open_folder)
        panel = QWidget()
        layout = QVBoxLayout(panel)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view, 1)
        layout.addLayout(bar)
        layout.addWidget(self.legend)
        self._set_result_controls(False)
        return panel

    @property
    def model_path(self) -> Path | None:
        return self._model_path

    def set_model(self, path: Path) -> asyncio.Task[bool]:
        """Reads a model's metadata in the background and makes it the model to predict with."""
        return self._tasks.start(self.load_model(path), name="read-model")

    async def load_model(self, path: Path) -> bool:
        """Reads a model's metadata; a file that is not a usable model is named in the banner."""
        path = Path(path).expanduser().resolve()
        try:
            metadata = await self._tasks.run_blocking(read_metadata, path)
        except EngineError as exc:
            self.banner.show_message(str(exc))
            self.status_message.emit(f"{path.name} is not a usable model; see the message above.")
            return False
        self._model_path = path
        self.model_label.setText(describe_model(path, metadata))
        self.model_label.setToolTip(str(path))
        self.options.set_model(metadata)
        self.banner.hide()
        self._update_run_button()
        self.status_message.emit(f"Model {path.name} chosen for prediction.")
        return True

    def start_prediction(self) -> JobWorker | None:
        """Starts the prediction job; None (with the reason in the banner) when something is missing."""
        if self.worker is not None:
            return None
        spec = self._spec()
        if spec is None:
            return None
        self.banner.hide()
        worker = JobWorker(spec, self._home)
        worker.started.connect(lambda job_id: self.progress.show_message(f"Job {job_id} is starting…"))
        worker.progress.connect(self.progress.show_progress)
        worker.message.connect(self._on_job_message)
        worker.finished.connect(self._on_finished)
        worker.failed.connect(self._on_failed)
        worker.cancelled.connect(self._on_cancelled)
        self.worker = worker
        self._jobs.add(worker)
        self._started_at = time.monotonic()
        count = len(spec.rasters)
        self.progress.start(f"Predicting {count} raster{'s' if count != 1 else ''}…")
        self._update_run_button()
        worker.start()
        return worker

    def cancel(self) -> None:
        """Asks the running job to stop; it ends at the next tile and removes its partial outputs."""
        if self.worker is not None:
            self.worker.cancel()

    def choose_model(self) -> None:
        start = self._model_path.parent if self._model_path else self._home / "models"
        path = file_dialogs.open_file(self, "Choose a model", OPEN_MODEL_FILTER, start)
        if path:
            self.set_model(path)

    def choose_output_dir(self) -> None:
        folder = file_dialogs.existing_folder(self, "Output folder", self._existing_output_parent())
        if folder:
            self.output_edit.setText(str(folder))
            self._output_is_default = False

    def _existing_output_parent(self) -> Path:
        """The shown output folder, or its nearest existing parent, where the folder dialog opens."""
        folder = Path(self.output_edit.text().strip() or self._home).expanduser()
        while not folder.is_dir() and folder != folder.parent:
            folder = folder.parent
        return folder

    def open_output_folder(self) -> None:
        folder = self.last_output_dir
        if folder is None or not QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder))):
            self.status_message.emit(f"Could not open the output folder; it is {folder}")

    def _missing(self) -> list[str]:
        """What the user still has to give before a prediction can start."""
        missing = []
        if self._model_path is None:
            missing.append("choose a model (or drop a .safetensors file on the window)")
        if not self.rasters.selected():
            missing.append("select at least one raster in the list (or add files)")
        if not self.output_edit.text().strip():
            missing.append("give an output folder")
        return missing

    def _spec(self) -> PredictSpec | None:
        missing = self._missing()
        if missing:
            self.banner.show_message(MISSING_PREFIX + " and ".join(missing) + ".")
            return None
        rasters = self.rasters.selected()
        if self._output_is_default and Path(self.output_edit.text().strip()).exists():
            self.output_edit.setText(str(default_output_dir(self._home)))
        output_dir = Path(self.output_edit.text().strip()).expanduser()
        return PredictSpec(self._model_path, rasters, output_dir, self.options.options())

    def _on_job_message(self, level: str, text: str) -> None:
        if level == "warning":
            shown = self.banner.text()
            self.banner.show_message(f"{shown}\n{text}" if shown else text)
        elif self.progress.running:
            self.progress.show_message(text)

    def _on_finished(self, outcome: JobOutcome) -> None:
        seconds = time.monotonic() - self._started_at
        self._end_job(f"Done in {format_duration(seconds)}: job {outcome.job_id}.")
        self.last_output_dir = Path(outcome.result["output_dir"])
        for prediction in outcome.predictions:
            key = prediction.raster.resolve()
            self._results[key] = prediction
            self._layers.pop(key, None)
        self.output_edit.setText(str(self.last_output_dir))
        names = ", ".join(p.raster.name for p in outcome.predictions)
        self.status_message.emit(f"Prediction of {names} written to {self.last_output_dir}.")
        current = self.rasters.current()
        if current is not None and current.path in self._results:
            self._show(current)
        else:
            self.rasters.select([prediction.raster for prediction in outcome.predictions])

    def _on_failed(self, message: str, detail: str) -> None:
        self._end_job("The prediction failed; see the message above.")
        self.banner.show_message(f"{message}\n{LOG_HINT}")
        self.status_message.emit(message.splitlines()[0])

    def _on_cancelled(self, message: str) -> None:
        self._end_job("Cancelled; no partial output was kept.")
        self.status_message.emit(message)

    def _end_job(self, text: str) -> None:
        self.worker = None
        self.progress.finish(text)
        self._update_run_button()

    def _update_run_button(self) -> None:
        if self.banner.text().startswith(MISSING_PREFIX) and not self._missing():
            self.banner.hide()
        self.run_button.setEnabled(self.worker is None)
        ready = self._model_path is not None and bool(self.rasters.selected())
        self.run_button.setToolTip(
            "Run the model on the selected rasters" if ready else "Choose a model and select rasters first"
        )

    def _on_output_edited(self) -> None:
        self._output_is_default = False
        self._update_run_button()

    def _on_current_changed(self, info: RasterInfo | None) -> None:
        if info is None:
            self.view.show_placeholder(EMPTY_PREVIEW_TEXT)
            self._clear_result()
            return
        self._show(info)

    def _show(self, info: RasterInfo) -> None:
        if self._shown_task is not None:
            self._shown_task.cancel()
        self._shown_task = self._tasks.start(self._show_raster_and_result(info), name="predict-preview")

    async def _show_raster_and_result(self, info: RasterInfo) -> None:
        """Draws the raster, then its result over it when this window predicted it."""
        await self.view.show_raster(info)
        result = self._results.get(info.path)
        if result is None or self.view.info != info or self.view.preview is None:
            self._clear_result()
            return
        layer = self._layers.get(info.path)
        if layer is None:
            try:
                layer = await self._tasks.run_blocking(render_result, result.summary, result.outputs)
            except EngineError as exc:
                self._clear_result()
                self.banner.show_message(f"The result of {info.path.name} cannot be shown: {exc}")
                return
            self._layers[info.path] = layer
        if self.view.info != info:
            return
        self.view.set_overlay(layer.rgba, self.opacity.value() / 100)
        self.view.set_probe(layer.describe)
        self.legend.show_summary(result.summary)
        self._set_result_controls(True)

    def _redraw_overlay(self) -> None:
        info = self.view.info
        layer = self._layers.get(info.path) if info is not None else None
        if layer is not None:
            self.view.set_overlay(layer.rgba, self.opacity.value() / 100)

    def _clear_result(self) -> None:
        self.view.set_overlay(None)
        self.view.set_probe(None)
        self.legend.clear()
        self._set_result_controls(False)

    def _set_result_controls(self, enabled: bool) -> None:
        for widget in (self.show_result, self.opacity):
            widget.setEnabled(enabled)
        self.open_folder.setEnabled(self.last_output_dir is not None)
