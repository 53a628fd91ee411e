"""``modelai-desktop``: the QApplication, the qasync event loop, settings, logging and error reporting.

The window runs on a qasync loop so that short reads can be coroutines awaiting read threads. The
whole session is one coroutine (`run_app`) that ends when the window closes, which lets the
running tasks be cancelled and awaited before the loop closes. A starting window shows before the
engine's heavy imports, which run on a thread (`modelai_desktop.startup`); the main window, whose
pages import the engine, is built after them. Any error that escapes is logged with its traceback
and shown in a non-modal message; the window keeps running.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import sys
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import qasync
from PySide6.QtCore import Qt
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from engine import __version__
from engine.errors import EngineError, JobStoreError
from engine.host_memory import keep_freed_memory
from engine.paths import app_home
from modelai_desktop import STARTED_AT
from modelai_desktop.gui_thread_gc import GuiThreadCollector
from modelai_desktop.logging_setup import configure_logging
from modelai_desktop.qt_platform import xcb_problem
from modelai_desktop.settings import AppSettings
from modelai_desktop.startup import APP_NAME, StartingWindow, StartupClock, load_engine_off_thread

if TYPE_CHECKING:
    from modelai_desktop.main_window import MainWindow

log = logging.getLogger(__name__)

RESOURCES_DIR = Path(__file__).resolve().parent.parent / "resources"
ICON_PATH = RESOURCES_DIR / "modelai.svg"
PAGES = ("data", "train", "predict", "label", "jobs", "models")
STYLE_SHEET = """
QListWidget#navigation { border: none; border-right: 1px solid palette(mid); padding-top: 8px;
                         background: palette(window); font-size: 11pt; outline: 0; }
QListWidget#navigation::item { padding: 9px 18px; margin: 1px 6px; border-radius: 4px; }
QListWidget#navigation::item:selected { background: palette(highlight); color: palette(highlighted-text); }
QListWidget#navigation::item:hover:!selected { background: palette(midlight); }
QLabel#sectionTitle { font-weight: 600; font-size: 11pt; }
QLabel#placeholder { color: palette(dark); font-size: 12pt; }
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelai-desktop",
        description="The ModelAI window: look at rasters, train models, predict, follow jobs.",
    )
    parser.add_argument("files", nargs="*", type=Path, help="GeoTIFF files or folders to open")
    parser.add_argument(
        "--home", type=Path, help="the data folder (default: MODELAI_HOME or the user folder)"
    )
    parser.add_argument("--page", choices=PAGES, default="data", help="the page to show first")
    parser.add_argument(
        "--screenshot",
        type=Path,
        metavar="OUT.png",
        help="load FILES, wait for their previews, save a PNG of the window and exit",
    )
    parser.add_argument(
        "--bands",
        type=_band_list,
        metavar="R,G,B",
        help="with --screenshot: the band (or three bands) to display for the previewed raster",
    )
    parser.add_argument(
        "--labels",
        type=Path,
        metavar="MASK_OR_VECTOR",
        help="with --page label: labels to go on from: a mask GeoTIFF on the raster's grid, or polygons "
        "(GeoPackage, Shapefile or .zip, GeoJSON, FlatGeobuf)",
    )
    parser.add_argument("--label-field", metavar="NAME", help="with --labels POLYGONS: the class field")
    parser.add_argument("--label-layer", metavar="NAME", help="with --labels POLYGONS: the layer")
    parser.add_argument("--version", action="version", version=f"modelai-desktop {__version__}")
    return parser


def _band_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of band numbers") from None


class ErrorReporter:
    """A ``sys.excepthook`` that logs the traceback and shows the error without stopping the window."""

    def __init__(self, window: MainWindow, log_file: Path) -> None:
        self._window = window
        self._log_file = log_file
        self.last_message = ""

    def __call__(
        self, kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, error, traceback)
            return
        log.error("Unhandled error", exc_info=(kind, error, traceback))
        if isinstance(error, EngineError):
            text = str(error)
        else:
            text = (
                f"Something went wrong: {kind.__name__}: {error}\n\n"
                f"The window keeps running. The details are in {self._log_file}."
            )
        self.last_message = text
        box = QMessageBox(
            QMessageBox.Icon.Warning, APP_NAME, text, QMessageBox.StandardButton.Ok, self._window
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.setWindowModality(Qt.WindowModality.NonModal)
        box.show()
        self._window.show_status(text.splitlines()[0])


async def run_app(
    args: argparse.Namespace, home: Path, log_file: Path, clock: StartupClock, starting: StartingWindow
) -> int:
    """Loads the engine off the GUI thread while ``starting`` shows, then runs the main window."""
    await load_engine_off_thread()
    clock.mark("engine loaded")
    from modelai_desktop.main_window import MainWindow

    window = MainWindow(AppSettings.in_home(home), log_file.parent, home)
    sys.excepthook = ErrorReporter(window, log_file)
    starting.close()
    return await run_window(window, args, clock)


async def run_window(window: MainWindow, args: argparse.Namespace, clock: StartupClock | None = None) -> int:
    """The whole session: until the window closes, or until a screenshot is saved."""
    from modelai_desktop.screenshot import capture_window

    window.start_background_reads()
    if args.screenshot:
        labels = (args.labels, args.label_layer, args.label_field) if args.labels else None
        code = await capture_window(window, args.screenshot, args.page, args.files, args.bands, labels)
    else:
        closed = asyncio.Event()
        window.closed.connect(closed.set)
        window.restore_geometry()
        window.show()
        window.show_page(args.page)
        if args.files:
            window.open_paths(args.files)
        else:
            window.restore_session()
        if args.labels is not None and args.files:
            window.label_page.open_raster(args.files[0], args.labels, args.label_layer, args.label_field)
        if clock is not None:
            clock.mark("main window")
            log.info("Start-up: %s", clock.summary())
        await closed.wait()
        code = 0
    await window.label_page.autosave.flush()  # the last strokes (or labels given) reach the disk
    await window.tasks.aclose()
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``modelai-desktop`` and ``python -m modelai_desktop``; returns the exit code."""
    multiprocessing.freeze_support()
    keep_freed_memory()
    args = build_parser().parse_args(argv)
    clock = StartupClock(STARTED_AT)
    if QApplication.instance() is None and not args.screenshot:
        problem = xcb_problem()
        if problem:
            print(f"modelai-desktop: {problem}", file=sys.stderr)
            return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setApplicationVersion(__version__)
    app.setWindowIcon(QIcon(str(ICON_PATH)))
    app.setStyle("Fusion")
    app.setStyleSheet(STYLE_SHEET)
    app.setQuitOnLastWindowClosed(False)
    GuiThreadCollector(app)  # jobs run Python in worker threads: garbage is collected on this one
    try:
        home = app_home(args.home)
    except JobStoreError as exc:
        print(exc, file=sys.stderr)
        if not args.screenshot:
            QMessageBox.critical(None, APP_NAME, str(exc))
        return 2
    starting = StartingWindow()
    if not args.screenshot:
        starting.show()
    clock.mark("first window")
    log_file = configure_logging(home / "logs")
    log.info("%s %s starting; data folder %s", APP_NAME, __version__, home)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        return loop.run_until_complete(run_app(args, home, log_file, clock, starting))
