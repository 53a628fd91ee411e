"""The Label page: paint classes on a raster, train on them, see where the model is unsure, repeat.

The page follows the raster selected on the Data page (or one given to `open_raster`). Its labels
live in the data folder (`engine.labels.store`) and come back at the next start. Every read, save and
file write runs on a read thread; training and whole-raster prediction are ordinary jobs (the job
store, the Jobs page) that `LabelTrainer` starts. After each epoch the latest checkpoint predicts the
part of the raster on screen, drawn as the class map or as "unsure here".
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QSlider, QSpinBox, QVBoxLayout, QWidget

from engine.errors import EngineError
from engine.labels.label_import import is_mask_file
from engine.labels.live_prediction import predict_window
from engine.labels.store import (
    CLASSES_NAME,
    MASK_NAME,
    LabelClass,
    labels_folder,
    load_classes,
    load_last_model,
    load_mask,
    save_label_polygons,
    save_mask,
)
from engine.labels.tiles import LabelTiles
from engine.rasters.preview import Preview, percentile_limits, read_preview, read_window, render_rgba
from engine.rasters.read import RasterInfo, read_info
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.label_autosave import LabelAutosave
from modelai_desktop.label_import import LabelImporter
from modelai_desktop.label_jobs import LabelJobs
from modelai_desktop.label_trainer import LabelTrainer
from modelai_desktop.widgets.display_controls import DisplayChoice, DisplayControls, colormap_lut
from modelai_desktop.widgets.label_canvas import LabelCanvas
from modelai_desktop.widgets.label_classes import ClassList
from modelai_desktop.widgets.label_tools import ToolBar
from modelai_desktop.widgets.label_training import LabelTrainingPanel, prediction_rgba, uncertainty_rgba
from modelai_desktop.widgets.message_banner import MessageBanner
from modelai_desktop.widgets.raster_view import MAX_PREVIEW_BANDS
from modelai_desktop.workers import JobRegistry

log = logging.getLogger(__name__)

MASK_FILTER = "GeoTIFF mask (*.tif)"
EXPORT_FILTER = f"{MASK_FILTER};;GeoPackage polygons with class names (*.gpkg)"
DEFAULT_CLASSES = (LabelClass("class 1", "#7fbf4d"), LabelClass("class 2", "#2a6fe8"))
PLACEHOLDER = "Choose a raster on the Data page (drop it on the window), then label it here."


class LabelPage(QWidget):
    """Signals: status_message(str) for the status bar; model_saved(Path) when a training ends."""

    status_message = Signal(str)
    model_saved = Signal(object)

    def __init__(self, tasks: BackgroundTasks, home: Path, jobs: JobRegistry, parent: QWidget | None = None):
        super().__init__(parent)
        self._followed: Path | None = None  # the Data page's raster, opened when this page shows
        self._tasks = tasks
        self._home = home
        self.info: RasterInfo | None = None
        self.tiles: LabelTiles | None = None
        self.folder: Path | None = None
        self.live_prediction = None
        self._view_task: asyncio.Task[None] | None = None
        self._preview: Preview | None = None
        self.controls = DisplayControls()
        self.controls.changed.connect(self._on_choice_changed)
        self.label_jobs = LabelJobs(home, jobs, self)
        self.autosave = LabelAutosave(tasks, self)
        self.autosave.failed.connect(self._show_error)
        self.importer = LabelImporter(self, tasks, home)
        self.importer.applied.connect(self._classes_edited)
        self.importer.imported.connect(self.status_message)
        self.importer.imported.connect(lambda text: self.position.setText(text))
        self.importer.failed.connect(self._show_error)

        self.banner = MessageBanner()
        self.canvas = LabelCanvas()
        self.canvas.stroke_finished.connect(lambda: self.autosave.changed())
        self.canvas.view_changed.connect(self.refresh_view)
        self.canvas.cursor_moved.connect(self._show_cursor)
        self.classes = ClassList()
        self.classes.pixel_counts = lambda: self.tiles.class_pixels() if self.tiles else {}
        self.classes.current_changed.connect(self._set_class)
        self.classes.classes_changed.connect(self._classes_edited)
        self.classes.class_deleted.connect(self._delete_class)
        self.classes.from_model_requested.connect(self.importer.choose_model_classes)
        self.tools = ToolBar()
        self.tools.tool_changed.connect(self.set_tool)
        self.tools.undo_requested.connect(self.canvas.undo)
        self.tools.redo_requested.connect(self.canvas.redo)
        self.brush_size = QSpinBox()
        self.brush_size.setRange(1, 200)
        self.brush_size.setValue(self.canvas.brush_size)
        self.brush_size.setSuffix(" px")
        self.brush_size.setToolTip("Brush and eraser diameter in raster pixels ([ and ] change it)")
        self.brush_size.valueChanged.connect(self._set_brush_size)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(70)
        self.opacity.setToolTip("Label opacity")
        self.opacity.valueChanged.connect(lambda value: self.canvas.set_opacity(value / 100))
        self.canvas.set_opacity(0.7)
        self.training = LabelTrainingPanel()
        self.training.overlay_changed.connect(self.refresh_view)
        self.trainer = LabelTrainer(self, tasks, home, self.label_jobs, self.training)
        self.trainer.model_saved.connect(self.model_saved)
        self.trainer.view_stale.connect(self.refresh_view)
        self.trainer.status_message.connect(self.status_message)
        self.trainer.failed.connect(self._show_error)
        imports = QLabel('<a href="#">Import labels (polygons or a mask) to edit…</a>')
        imports.linkActivated.connect(lambda _link: self.importer.choose())
        export = QLabel('<a href="#">Export labels (mask GeoTIFF or GeoPackage)…</a>')
        export.linkActivated.connect(lambda _link: self.choose_export())
        self.position = QLabel(PLACEHOLDER)
        self.position.setWordWrap(True)

        side = QVBoxLayout()
        side.addWidget(QLabel("Classes (keys 1-9)"))
        side.addWidget(self.classes, 1)
        side.addWidget(self.tools)
        for text, widget in (("Brush", self.brush_size), ("Opacity", self.opacity)):
            row = QHBoxLayout()
            row.addWidget(QLabel(text))
            row.addWidget(widget, 1)
            side.addLayout(row)
        side.addWidget(self.training)
        side.addWidget(imports)
        side.addWidget(export)
        side_panel = QWidget()
        side_panel.setLayout(side)
        side_panel.setFixedWidth(330)
        body = QHBoxLayout()
        body.addWidget(side_panel)
        view = QVBoxLayout()
        view.addWidget(self.controls)
        view.addWidget(self.canvas, 1)
        view.addWidget(self.position)
        body.addLayout(view, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.banner)
        layout.addLayout(body, 1)
        self._add_shortcuts()

    def _add_shortcuts(self) -> None:
        keys = {
            "B": lambda: self.set_tool("brush"),
            "E": lambda: self.set_tool("eraser"),
            "P": lambda: self.set_tool("polygon"),
            "H": lambda: self.set_tool("pan"),
            "Ctrl+Z": self.canvas.undo,
            "Ctrl+Shift+Z": self.canvas.redo,
            "Return": self.canvas.close_polygon,
            "Enter": self.canvas.close_polygon,
            "Escape": self.canvas.cancel_polygon,
            "[": lambda: self.brush_size.setValue(self.brush_size.value() - 2),
            "]": lambda: self.brush_size.setValue(self.brush_size.value() + 2),
            "Ctrl+T": self.trainer.train,
        }
        keys.update({str(number): (lambda n=number: self.classes.select(n - 1)) for number in range(1, 10)})
        for key, slot in keys.items():
            shortcut = QShortcut(QKeySequence(key), self, slot)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)

    def set_tool(self, tool: str) -> None:
        self.canvas.tool = tool
        self.canvas.cancel_polygon()
        self.tools.show_tool(tool)

    def follow_raster(self, info: RasterInfo | None) -> None:
        """The Data page selected a raster: label that one (its saved labels come back).

        It is opened when the page is shown, not at once: most selections are never labelled, and
        opening reads a preview and the saved labels.
        """
        self._followed = None if info is None else info.path
        if self.isVisible():
            self._open_followed()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._open_followed()

    def _open_followed(self) -> None:
        followed, self._followed = self._followed, None
        if followed is not None and (self.info is None or self.info.path != followed):
            self.open_raster(followed)

    def open_raster(
        self,
        path: Path,
        labels: Path | None = None,
        label_layer: str | None = None,
        label_field: str | None = None,
    ) -> asyncio.Task[None]:
        """Shows ``path`` with its saved labels, or with ``labels``: a mask GeoTIFF on its grid instead
        of them, or polygons of a vector file (its ``label_layer`` and class field ``label_field``)
        imported into them as Import labels does, so a file that cannot be used loses nothing."""
        return self._tasks.start(self._open(path, labels, label_layer, label_field), name="label-open")

    async def _open(self, path: Path, labels: Path | None, layer: str | None, field: str | None) -> None:
        await self.autosave.flush()
        try:
            info = await self._tasks.run_blocking(read_info, path)
            choice = DisplayChoice.default_for(info)
            bands = None if len(info.data_bands) <= MAX_PREVIEW_BANDS else list(choice.bands)
            preview = await self._tasks.run_blocking(read_preview, info, bands)
            folder = labels_folder(self._home, info.path)
            given_mask = labels is not None and is_mask_file(labels)
            source = labels if given_mask else folder / MASK_NAME
            if source.is_file():
                tiles = await self._tasks.run_blocking(load_mask, source, info)
            else:
                tiles = LabelTiles(info.height, info.width)
            classes = await self._tasks.run_blocking(load_classes, folder / CLASSES_NAME)
            last_model = await self._tasks.run_blocking(load_last_model, folder)
        except EngineError as exc:
            self._show_error(str(exc))
            return
        highest = max(tiles.class_pixels(), default=-1)
        classes = list(classes or DEFAULT_CLASSES)
        while len(classes) <= highest:
            classes.append(LabelClass(f"class {len(classes) + 1}", "#ffffff"))
        self.info, self.tiles, self.folder, self._preview = info, tiles, folder, preview
        self.classes.set_classes(classes)
        self.canvas.set_labels(tiles, [label.color for label in classes])
        self.controls.set_raster(info, choice)
        self.canvas.show_raster(self._render(preview), info.height, info.width)
        self.autosave.attach(folder, info, tiles, self.classes.classes)
        if given_mask:
            self.autosave.changed(classes_too=True)
        self.label_jobs.use_model(last_model)
        self.training.set_running(False, has_model=last_model is not None)
        if last_model is not None:
            self.training.state.setText(f"Last model: {last_model.name}. Train again to improve it.")
        self.position.setText(f"{info.describe()}. Labels: {sum(tiles.class_pixels().values())} pixels.")
        if labels is not None and not given_mask:
            await self.importer.run(labels, layer, field)

    def _render(self, pixels: Preview) -> np.ndarray:
        """RGBA of the preview or of a window, stretched by the limits of the whole raster's preview."""
        assert self._preview is not None
        choice = self.controls.choice()
        limits = [
            percentile_limits(self._preview.band_array(band), self._preview.valid, choice.percentiles)
            for band in choice.bands
        ]
        lut = colormap_lut(choice.colormap) if len(choice.bands) == 1 else None
        return render_rgba(pixels, choice.bands, lut=lut, limits=limits)

    def _on_choice_changed(self) -> None:
        if self.info is not None:
            self._tasks.start(self._redraw(self.info), name="label-bands")

    async def _redraw(self, info: RasterInfo) -> None:
        """Draws the raster with the bands and stretch chosen now (reading them if not read yet)."""
        bands = self.controls.choice().bands
        if self._preview is None or not set(bands) <= set(self._preview.bands):
            try:
                self._preview = await self._tasks.run_blocking(read_preview, info, list(bands))
            except EngineError as exc:
                self._show_error(str(exc))
                return
        if self.info is info:
            self.canvas.set_overview(self._render(self._preview))
            self.refresh_view()

    def refresh_view(self) -> None:
        """Reads the visible part sharply and, with a model, predicts it (on read threads)."""
        if self._view_task is not None and not self._view_task.done():
            self._view_task.cancel()
        if self.info is not None:
            self._view_task = self._tasks.start(self._refresh_view(), name="label-view")

    async def _refresh_view(self) -> None:
        info, window = self.info, self.canvas.visible_window()
        if info is None or window is None:
            return
        shape = self.canvas.screen_shape(window)
        try:
            detail = await self._tasks.run_blocking(
                read_window, info, list(self.controls.choice().bands), window, shape
            )
            self.canvas.set_detail(self._render(detail), window)
            await self._show_overlay(window)
        except EngineError as exc:
            self._show_error(str(exc))

    async def _show_overlay(self, window: object) -> None:
        kind = self.training.overlay_kind()
        network = self.label_jobs.network
        if kind is None or network is None or not network.is_file() or self.info is None:
            self.canvas.set_overlay(None)
            return
        measure = "margin" if kind == "prediction" else kind
        prediction = await self._tasks.run_blocking(predict_window, network, self.info, window, 512, measure)
        self.live_prediction = prediction
        if kind == "prediction":
            rgba = prediction_rgba(prediction.classes, [label.color for label in self.classes.classes()])
        else:
            rgba = uncertainty_rgba(prediction.uncertainty)
        self.canvas.set_overlay(rgba, prediction.window)

    def choose_export(self) -> None:
        """The Export dialog (a plain slot, so its modal loop is safe)."""
        if self.info is None:
            return
        start = str(self.info.path.with_name(f"{self.info.path.stem}_mask.tif"))
        name, chosen = QFileDialog.getSaveFileName(self, "Export labels", start, EXPORT_FILTER)
        if name and chosen != MASK_FILTER and not name.lower().endswith(".gpkg"):
            name = str(Path(name).with_suffix(".gpkg"))
        if name:
            self._tasks.start(self.export_labels(Path(name)), name="label-export")

    async def export_labels(self, path: Path) -> None:
        """Writes the labels as a mask GeoTIFF on the raster's grid (what `modelai train` accepts) or,
        for a ``.gpkg`` path, as polygons with their class names (what `--labels` accepts)."""
        if self.info is None or self.tiles is None:
            return
        save = save_label_polygons if path.suffix.lower() == ".gpkg" else save_mask
        try:
            await self._tasks.run_blocking(save, path, self.info, self.tiles.copy(), self.classes.classes())
        except EngineError as exc:
            self._show_error(str(exc))
            return
        self.status_message.emit(f"Labels exported to {path}.")

    def _classes_edited(self) -> None:
        self.canvas.set_colors([label.color for label in self.classes.classes()])
        self.autosave.changed(classes_too=True)

    def _delete_class(self, class_id: int) -> None:
        if self.tiles is not None:
            self.tiles.delete_class(class_id)
        self._classes_edited()

    def _set_class(self, class_id: int) -> None:
        self.canvas.current_class = class_id
        if self.canvas.tool == "eraser":
            self.set_tool("brush")

    def _set_brush_size(self, size: int) -> None:
        self.canvas.brush_size = size

    def _show_cursor(self, col: float, row: float) -> None:
        if self.info is not None and 0 <= col < self.info.width and 0 <= row < self.info.height:
            self.position.setText(f"Pixel {int(col)}, {int(row)}")

    def _show_error(self, text: str) -> None:
        self.banner.show_message(text)
        self.status_message.emit(text.splitlines()[0])
