"""Labels and classes from files on the Label page: polygons or a mask merged into the labels as one
step, and the class list of a label file or of a model.

The flow keeps the event loop free and every modal dialog in a plain slot: the file is chosen
(dialog), its layers and fields are read (read thread), the layer and class field are asked
(dialog, opened from a timer slot, never from the coroutine), the polygons are burnt onto the
raster's grid (read thread), and only the merge itself happens on the GUI thread.

An import merges: the file's labels are drawn over the current ones where they fall, and pixels
the file leaves unlabelled keep what was painted. That is what a person who painted scribbles and
then adds a colleague's polygons expects; replacing would throw painting away unasked, against the
rule that nothing painted is lost. One Ctrl+Z takes the whole import back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog

from engine.errors import EngineError
from engine.labels.label_import import describe_layers, import_labels, is_mask_file, label_file_classes
from engine.labels.store import LabelClass
from engine.labels.vector_file import LabelLayerInfo
from engine.models.file import read_metadata
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.model_library import OPEN_MODEL_FILTER
from modelai_desktop.widgets.label_import_dialog import ImportChoice, ask_import

if TYPE_CHECKING:
    from modelai_desktop.pages.label_page import LabelPage

IMPORT_FILTER = (
    "Labels (*.gpkg *.shp *.zip *.geojson *.json *.fgb *.tif *.tiff);;"
    "Polygons (*.gpkg *.shp *.zip *.geojson *.json *.fgb);;Mask GeoTIFF on the raster's grid (*.tif *.tiff)"
)


class LabelImporter(QObject):
    """Imports label files (and models' classes) into a Label page's labels and classes.

    ``ask`` answers the layer and field question (a dialog; a test can replace it).

    Signals:
        applied(): labels or classes changed (the page redraws and autosaves).
        imported(str): what was imported, for the status bar.
        failed(str): why nothing was imported.
    """

    applied = Signal()
    imported = Signal(str)
    failed = Signal(str)

    def __init__(self, page: LabelPage, tasks: BackgroundTasks, home: Path) -> None:
        super().__init__(page)
        self._page = page
        self._tasks = tasks
        self._home = home
        self.ask: Callable[[dict[str, LabelLayerInfo]], ImportChoice | None] = lambda layers: ask_import(
            page, layers
        )

    def choose(self) -> None:
        """The Import dialog (a plain slot, so its modal loop is safe)."""
        if self._page.info is None:
            return
        start = str(self._page.info.path.parent)
        name, _ = QFileDialog.getOpenFileName(self._page, "Import labels", start, IMPORT_FILTER)
        if name:
            self._tasks.start(self.prepare(Path(name)), name="label-import")

    async def prepare(self, path: Path) -> None:
        """Imports a mask at once; for polygons reads the layers, then asks which layer and field."""
        if is_mask_file(path):
            await self.run(path)
            return
        try:
            layers = await self._tasks.run_blocking(describe_layers, path)
        except EngineError as exc:
            self.failed.emit(str(exc))
            return
        QTimer.singleShot(0, self, lambda: self._ask(path, layers))

    def _ask(self, path: Path, layers: dict[str, LabelLayerInfo]) -> None:
        choice = self.ask(layers)
        if choice is not None:
            imports = self.run(path, choice.layer, choice.field, choice.classes_only)
            self._tasks.start(imports, name="label-import")

    async def run(
        self, path: Path, layer: str | None = None, field: str | None = None, classes_only: bool = False
    ) -> bool:
        """Reads ``path`` on a read thread and merges its labels (or only its classes) into the page's.

        Returns:
            True when something was imported; False (with the reason in ``failed``) when nothing was.
        """
        page = self._page
        info, tiles, before = page.info, page.tiles, page.classes.classes()
        if info is None or tiles is None:
            return False
        try:
            if classes_only:
                classes = await self._tasks.run_blocking(label_file_classes, path, before, layer, field)
            else:
                result = await self._tasks.run_blocking(import_labels, path, info, before, layer, field)
                classes = result.classes
        except EngineError as exc:
            self.failed.emit(str(exc))
            return False
        if page.info is not info or page.tiles is not tiles or page.classes.classes() != before:
            self.failed.emit(
                f"The raster or its classes changed while {path.name} was read; nothing was imported. "
                "Import it again."
            )
            return False
        page.classes.set_classes(classes)
        added = len(classes) - len(before)
        if classes_only:
            message = f"{added} class(es) taken from {path.name}."
        else:
            tiles.begin_stroke()
            tiles.paste(result.tiles)
            tiles.end_stroke()
            page.canvas.refresh_labels()
            message = f"Imported {result.pixels} labelled pixels from {path.name} ({added} new class(es))."
            if result.repaired or result.dropped:
                message += (
                    f" {result.repaired} invalid polygon(s) repaired, {result.dropped} feature(s) without "
                    "geometry or class left out."
                )
            message += " Ctrl+Z undoes it."
        self.applied.emit()
        self.imported.emit(message)
        return True

    def choose_model_classes(self) -> None:
        """The dialog for a model whose classes to take (a plain slot, so its modal loop is safe)."""
        name, _ = QFileDialog.getOpenFileName(
            self._page, "Classes from a model", str(self._home / "models"), OPEN_MODEL_FILTER
        )
        if name:
            self._tasks.start(self.take_model_classes(Path(name)), name="label-model-classes")

    async def take_model_classes(self, path: Path) -> bool:
        """Names and colours of a segmentation model's classes (labels keep their ids)."""
        try:
            metadata = await self._tasks.run_blocking(read_metadata, path)
        except EngineError as exc:
            self.failed.emit(str(exc))
            return False
        if metadata.task != "segmentation":
            self.failed.emit(f"{path.name} is an {metadata.task} model: it has no classes to take.")
            return False
        ordered = sorted(metadata.classes, key=lambda info: info.id)
        self._page.classes.set_classes([LabelClass(info.name, info.color) for info in ordered])
        self.applied.emit()
        self.imported.emit(f"Classes taken from {path.name}.")
        return True
