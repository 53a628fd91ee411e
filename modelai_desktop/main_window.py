"""The shell: page navigation, menus, drag-and-drop routing and the status bar; no business logic.

Pages are added by name (`add_page`) and only pages that exist are listed, so the navigation never
shows a dead entry. Files dropped anywhere on the window go to the Data page, model files
(``.safetensors``) to the Predict page.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QMimeData, QSize, QUrl, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QHBoxLayout,
    QListWidget,
    QMainWindow,
    QMenu,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine import __version__
from engine.errors import EngineError
from engine.paths import app_home
from engine.selftest import SelfTestReport, run_self_test
from engine.training.config import TrainConfig
from modelai_desktop import file_dialogs
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.interrupted import InterruptedBanner, find_interrupted
from modelai_desktop.model_library import MODEL_SUFFIX
from modelai_desktop.pages.data_page import DataPage
from modelai_desktop.pages.jobs_page import JobsPage
from modelai_desktop.pages.label_page import LabelPage
from modelai_desktop.pages.models_page import ModelsPage
from modelai_desktop.pages.predict_page import PredictPage
from modelai_desktop.pages.train_page import TrainPage
from modelai_desktop.settings import AppSettings
from modelai_desktop.startup import APP_NAME
from modelai_desktop.third_party import THIRD_PARTY_TEXT, components_summary
from modelai_desktop.workers import JobRegistry, JobWorker

log = logging.getLogger(__name__)

DEFAULT_SIZE = QSize(1280, 820)
SCREEN_FRACTION = 0.9
STATUS_TIMEOUT_MS = 15_000
FINISHING_TEXT = "Finishing: stopping {jobs} after the current step; ModelAI closes then…"
NAVIGATION_WIDTH = 130


def local_paths(mime: QMimeData) -> list[Path]:
    """The local files and folders carried by a drag (remote URLs are not files we can read)."""
    return [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]


class MainWindow(QMainWindow):
    """The application window. ``closed`` is emitted once the window has saved its state and closed."""

    closed = Signal()

    def __init__(
        self, settings: AppSettings, log_dir: Path, home: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.log_dir = log_dir
        self.home = home or app_home()
        self.tasks = BackgroundTasks()
        file_dialogs.remember_in(settings)
        self.jobs = JobRegistry(self)
        self.jobs.changed.connect(self._close_when_finished)
        self.quit_box: QMessageBox | None = None
        self._finishing = False
        self.setWindowTitle(APP_NAME)
        self.resize(DEFAULT_SIZE)
        self.setAcceptDrops(True)

        self.navigation = QListWidget()
        self.navigation.setObjectName("navigation")
        self.navigation.setFixedWidth(NAVIGATION_WIDTH)
        self.pages = QStackedWidget()
        self.navigation.currentRowChanged.connect(self.pages.setCurrentIndex)
        self.interrupted_banner = InterruptedBanner()
        self.interrupted_banner.resume_requested.connect(self._resume_training)
        content = QVBoxLayout()
        content.setContentsMargins(0, 0, 0, 0)
        content.addWidget(self.interrupted_banner)
        content.addWidget(self.pages, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.navigation)
        layout.addLayout(content, 1)
        self.setCentralWidget(central)

        self.data_page = DataPage(self.tasks)
        self.data_page.status_message.connect(self.show_status)
        self.data_page.rasters_added.connect(self._remember_recent)
        self.data_page.open_requested.connect(self.choose_files)
        self.add_page("Data", self.data_page)
        self.train_page = TrainPage(self.tasks, self.home, self.jobs)
        self.train_page.status_message.connect(self.show_status)
        self.train_page.training_started.connect(self._remember_training)
        self.add_page("Train", self.train_page)
        self.predict_page = PredictPage(self.tasks, self.home, self.data_page.table.raster_model, self.jobs)
        self.predict_page.status_message.connect(self.show_status)
        self.add_page("Predict", self.predict_page)
        self.label_page = LabelPage(self.tasks, self.home, self.jobs)
        self.label_page.status_message.connect(self.show_status)
        self.data_page.table.selected.connect(self.label_page.follow_raster)
        self.add_page("Label", self.label_page)
        self.jobs_page = JobsPage(self.tasks, self.home, self.jobs)
        self.jobs_page.status_message.connect(self.show_status)
        self.jobs_page.resume_requested.connect(self._resume_training)
        self.add_page("Jobs", self.jobs_page)
        self.models_page = ModelsPage(self.tasks, self.home)
        self.models_page.status_message.connect(self.show_status)
        self.models_page.predict_requested.connect(lambda model: self.open_paths([model]))
        self.train_page.model_saved.connect(lambda _model: self.models_page.refresh())
        self.train_page.model_saved.connect(self.predict_page.set_model)
        self.label_page.model_saved.connect(lambda _model: self.models_page.refresh())
        self.add_page("Models", self.models_page)
        self._build_menus()
        self.show_status("Ready. Drop GeoTIFF files or a folder on the window to add them.")

    def start_background_reads(self) -> asyncio.Task[None]:
        """What the window reads once the loop runs: the Train page's devices and the interrupted jobs."""
        self.train_page.start_background_reads()
        return self.tasks.start(self._show_interrupted(), name="find-interrupted")

    async def _show_interrupted(self) -> None:
        try:
            interrupted = await self.tasks.run_blocking(find_interrupted, self.home)
        except EngineError as exc:
            self.show_status(str(exc))
            return
        self.interrupted_banner.show_jobs(interrupted)

    def restore_session(self) -> None:
        """Lists the rasters of the last session again and fills the Train page with the last
        training's data and settings (each only where it still exists and reads)."""
        rasters = self.settings.session_rasters()
        if rasters:
            self.data_page.add_paths(rasters)
        stored = self.settings.last_training()
        if stored is None:
            return
        try:
            config = TrainConfig.from_dict(stored)
        except (EngineError, TypeError, ValueError) as exc:
            log.info("The last training's settings are not restored: %s", exc)
            return
        self.train_page.restore_settings(config)

    def _remember_training(self, config: TrainConfig) -> None:
        self.settings.set_last_training(config.to_dict())

    def _resume_training(self, job_id: int) -> None:
        self.interrupted_banner.forget(job_id)
        self.show_page("train")
        self.train_page.resume_job(job_id)

    def add_page(self, name: str, widget: QWidget) -> None:
        """Adds a page to the navigation (in call order) and selects it when it is the first one."""
        if name in self.page_names():
            raise ValueError(f"A page named {name!r} already exists.")
        self.pages.addWidget(widget)
        self.navigation.addItem(name)
        if self.navigation.currentRow() < 0:
            self.navigation.setCurrentRow(0)

    def page_names(self) -> list[str]:
        return [self.navigation.item(row).text() for row in range(self.navigation.count())]

    def show_page(self, name: str) -> bool:
        """Selects a page by its case-insensitive name; False when no such page exists."""
        names = [page.lower() for page in self.page_names()]
        if name.lower() not in names:
            return False
        self.navigation.setCurrentRow(names.index(name.lower()))
        return True

    def current_page_name(self) -> str:
        item = self.navigation.currentItem()
        return item.text() if item else ""

    def show_status(self, text: str) -> None:
        self.statusBar().showMessage(text, STATUS_TIMEOUT_MS)

    def open_paths(self, paths: Sequence[Path]) -> None:
        """Sends model files to the Predict page and the other files and folders to the Data page."""
        models = [path for path in paths if path.suffix.lower() == MODEL_SUFFIX]
        others = [path for path in paths if path.suffix.lower() != MODEL_SUFFIX]
        if others:
            self.show_page("Data")
            self.data_page.add_paths(others)
        if models:
            self.show_page("Predict")
            self.predict_page.set_model(models[-1])

    def choose_files(self) -> None:
        """The File → Open… dialog (a plain slot, never a coroutine, so its modal loop is safe)."""
        paths = file_dialogs.open_files(self, "Open rasters")
        if paths:
            self.open_paths(paths)

    def restore_geometry(self) -> None:
        """Puts the window where the user left it last time, else fits the default size to the screen."""
        geometry = self.settings.window_geometry()
        if geometry is not None and self.restoreGeometry(geometry):
            return
        screen = self.screen().availableGeometry()
        self.resize(
            min(DEFAULT_SIZE.width(), int(screen.width() * SCREEN_FRACTION)),
            min(DEFAULT_SIZE.height(), int(screen.height() * SCREEN_FRACTION)),
        )

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        self._accept_local_files(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        self._accept_local_files(event)

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event.mimeData())
        if not paths:
            event.ignore()
            return
        event.acceptProposedAction()
        self.open_paths(paths)

    def closeEvent(self, event: QCloseEvent) -> None:
        """Closes at once when no job runs; otherwise asks, then lets the jobs stop before closing.

        The window never closes with a job thread running: the jobs are cancelled, each ends (and is
        recorded as cancelled) after its current step, and the window closes once the last is gone.
        """
        if self.jobs.workers():
            event.ignore()
            if not self._finishing:
                self.ask_quit()
            return
        self.settings.set_window_geometry(self.saveGeometry())
        self.settings.set_session_rasters([info.path for info in self.data_page.rasters()])
        self.settings.sync()
        event.accept()
        self.closed.emit()

    def ask_quit(self) -> QMessageBox:
        """Asks whether to cancel the running jobs and quit; a window-modal box, never a nested loop."""
        workers = self.jobs.workers()
        running = f"{_describe_jobs(workers)} {'is' if len(workers) == 1 else 'are'} running"
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "Quit ModelAI",
            f"{running[0].upper()}{running[1:]}. Cancel and quit?\n\nA cancelled training keeps its"
            " last finished epoch: Resume on the Jobs page continues it.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        box.button(QMessageBox.StandardButton.Yes).setText("Cancel and quit")
        box.button(QMessageBox.StandardButton.No).setText("Keep running")
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.accepted.connect(self.finish_jobs_and_close)
        self.quit_box = box
        box.open()
        return box

    def finish_jobs_and_close(self) -> None:
        """Cancels every job and shows that the window closes once they have stopped."""
        self._finishing = True
        self.centralWidget().setEnabled(False)
        self.menuBar().setEnabled(False)
        self.statusBar().showMessage(FINISHING_TEXT.format(jobs=_describe_jobs(self.jobs.workers())))
        for worker in self.jobs.workers():
            worker.cancel()
        self._close_when_finished()

    def _close_when_finished(self) -> None:
        if self._finishing and not self.jobs.workers():
            self.close()

    def _accept_local_files(self, event: QDragEnterEvent | QDragMoveEvent) -> None:
        if local_paths(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open…", self, shortcut=QKeySequence.StandardKey.Open)
        open_action.setStatusTip("Add GeoTIFF rasters to the Data page")
        open_action.triggered.connect(self.choose_files)
        file_menu.addAction(open_action)
        self.recent_menu = QMenu("Open &Recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addMenu(self.recent_menu)
        self._update_recent_menu_state()
        file_menu.addSeparator()
        self.quit_action = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        self.quit_action.triggered.connect(self.close)
        file_menu.addAction(self.quit_action)

        help_menu = self.menuBar().addMenu("&Help")
        log_action = QAction("Open &Log Folder", self)
        log_action.setStatusTip(f"Open {self.log_dir}, where errors are recorded")
        log_action.triggered.connect(self._open_log_folder)
        help_menu.addAction(log_action)
        self.self_test_action = QAction("Run &Self-Test", self)
        self.self_test_action.setStatusTip(
            "Check GDAL/PROJ, GeoTIFF writing, a short training and a prediction on this machine"
        )
        self.self_test_action.triggered.connect(self.run_self_test)
        help_menu.addAction(self.self_test_action)
        about_action = QAction(f"&About {APP_NAME}", self)
        about_action.triggered.connect(self._show_about)
        help_menu.addAction(about_action)

    def run_self_test(self) -> asyncio.Task[SelfTestReport]:
        """Checks this installation on a read thread (as ``modelai --self-test``) and shows the result."""
        self.self_test_action.setEnabled(False)
        self.show_status("Running the self-test: GDAL/PROJ, GeoTIFF, a short training and a prediction…")
        return self.tasks.start(self._self_test(), name="self-test")

    async def _self_test(self) -> SelfTestReport:
        try:
            report = await self.tasks.run_blocking(run_self_test)
        finally:
            self.self_test_action.setEnabled(True)
        lines = "\n".join(result.line() for result in report.results)
        log.info("Self-test: %s\n%s", report.summary(), lines)
        icon = QMessageBox.Icon.Information if report.passed else QMessageBox.Icon.Warning
        self.self_test_box = QMessageBox(icon, "Self-test", report.summary(), parent=self)
        self.self_test_box.setDetailedText(lines)
        self.self_test_box.open()  # not exec(): never a modal loop inside a coroutine
        self.show_status(report.summary())
        return report

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.settings.recent_files():
            action = self.recent_menu.addAction(path.name)
            action.setToolTip(str(path))
            action.setStatusTip(str(path))
            action.triggered.connect(lambda _checked=False, chosen=path: self.open_paths([chosen]))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear Recent Files", self._clear_recent)

    def _remember_recent(self, paths: list[Path]) -> None:
        self.settings.add_recent_files([path.resolve() for path in paths])
        self._update_recent_menu_state()

    def _clear_recent(self) -> None:
        self.settings.clear_recent_files()
        self._update_recent_menu_state()

    def _update_recent_menu_state(self) -> None:
        self.recent_menu.setEnabled(bool(self.settings.recent_files()))

    def _open_log_folder(self) -> None:
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.log_dir))):
            self.show_status(f"Could not open the log folder; it is {self.log_dir}")

    def _show_about(self) -> None:
        self.about_box = QMessageBox(
            QMessageBox.Icon.Information,
            f"About {APP_NAME}",
            f"<b>{APP_NAME}</b> {__version__}<br>Offline deep learning on multispectral rasters: "
            "U-Net segmentation, autoencoder anomaly detection, seamless tiled inference.<br><br>"
            f"Log folder: {self.log_dir}",
            parent=self,
        )
        self.about_box.setInformativeText(THIRD_PARTY_TEXT)
        self.about_box.setDetailedText(components_summary())
        self.about_box.open()


def _describe_jobs(workers: Sequence[JobWorker]) -> str:
    """``job 4 (train-segmentation)`` or ``2 jobs``: what is running, for a sentence."""
    if len(workers) != 1:
        return f"{len(workers)} jobs"
    worker = workers[0]
    number = f"job {worker.job_id}" if worker.job_id is not None else "a job"
    return f"{number} ({worker.spec.kind})"
