"""The Models page's "Export to ONNX…": the file dialog, the export off the GUI thread, its result.

The dialog opens from a plain slot (a modal loop must not run inside a coroutine); the export
itself (tracing the network, a few seconds) runs on a read thread through `BackgroundTasks`. The
save dialog has already asked before replacing a file, so the export may overwrite.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QPushButton, QWidget

from engine.errors import EngineError
from engine.export.onnx_file import OnnxExport, export_onnx
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.widgets.message_banner import MessageBanner

ONNX_FILTER = "ONNX models (*.onnx);;All files (*)"


class OnnxExportAction(QObject):
    """The button and what it does for the model ``current_model()`` names (None: nothing selected).

    Signals:
        status_message(str): the one-line result for the status bar.
    """

    status_message = Signal(str)

    def __init__(
        self,
        tasks: BackgroundTasks,
        banner: MessageBanner,
        current_model: Callable[[], Path | None],
        parent: QWidget,
    ) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._banner = banner
        self._current_model = current_model
        self.button = QPushButton("Export to ONNX…")
        self.button.setToolTip(
            "Write an ONNX file that the QGIS Deepness plugin (or any onnxruntime user) runs as it is"
        )
        self.button.clicked.connect(self.ask_target)

    def ask_target(self) -> None:
        model = self._current_model()
        if model is None:
            return
        suggested = str(model.with_suffix(".onnx"))
        name, _ = QFileDialog.getSaveFileName(self.parent(), "Export to ONNX", suggested, ONNX_FILTER)
        if name:
            self.export(model, Path(name))

    def export(self, model: Path, target: Path) -> asyncio.Task[OnnxExport | None]:
        """Exports ``model`` to ``target`` in the background; errors and notes go to the banner."""
        return self._tasks.start(self._export(model, target), name="export-onnx")

    async def _export(self, model: Path, target: Path) -> OnnxExport | None:
        self.button.setEnabled(False)
        try:
            exported = await self._tasks.run_blocking(
                functools.partial(export_onnx, model, target, overwrite=True)
            )
        except EngineError as exc:
            self._banner.show_message(str(exc))
            return None
        finally:
            self.button.setEnabled(True)
        if exported.notes:
            self._banner.show_message(" ".join(exported.notes))
        self.status_message.emit(f"Exported {model.name} to {exported.path} for QGIS Deepness.")
        return exported
