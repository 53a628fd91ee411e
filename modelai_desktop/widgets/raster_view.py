"""The raster view: a decimated preview with band composite, stretch, pan/zoom and an overlay layer.

The preview is read on a read thread (`engine.rasters.preview.read_preview`), so a 20000×20000 mosaic
shows as fast as a small tile and the window never freezes. The image is placed in full-resolution
pixel coordinates, so the cursor position maps to map coordinates through the raster's own
transform, and an overlay of any resolution (a prediction, an anomaly map) lines up with it.
Nodata is transparent over a checkerboard, never black.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStackedWidget,
    QStyleOptionGraphicsItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)
from rasterio.transform import Affine

from engine.errors import EngineError
from engine.rasters.preview import Preview, read_preview, render_rgba
from engine.rasters.read import RasterInfo
from modelai_desktop.async_tasks import BackgroundTasks
from modelai_desktop.widgets.display_controls import DisplayChoice, DisplayControls, colormap_lut

MAX_PREVIEW_BANDS = 16
CANVAS_COLOR = "#c9cdd2"
CHECKER_COLORS = ("#f4f4f4", "#d9d9d9")
CHECKER_CELL = 8
CURSOR_HINT = "Move the cursor over the image to read map coordinates and band values."
NO_DATA_TEXT = "Every pixel of this raster is nodata (or NaN): there is nothing to show."


def checkerboard_brush(cell: int = CHECKER_CELL) -> QBrush:
    """A light checkerboard that shows through transparent (nodata) pixels."""
    pixmap = QPixmap(2 * cell, 2 * cell)
    pixmap.fill(QColor(CHECKER_COLORS[0]))
    painter = QPainter(pixmap)
    painter.fillRect(0, 0, cell, cell, QColor(CHECKER_COLORS[1]))
    painter.fillRect(cell, cell, cell, cell, QColor(CHECKER_COLORS[1]))
    painter.end()
    return QBrush(pixmap)


class CheckerboardItem(QGraphicsRectItem):
    """A checkerboard under the raster's extent, drawn at screen scale whatever the zoom.

    It shows through transparent (nodata) pixels only, so nodata reads as "no data here" and is
    never confused with black pixels or with the canvas around the raster.
    """

    def __init__(self) -> None:
        super().__init__()
        self.setPen(QPen(Qt.PenStyle.NoPen))
        self._brush = checkerboard_brush()

    def paint(
        self, painter: QPainter, option: QStyleOptionGraphicsItem, widget: QWidget | None = None
    ) -> None:
        device_rect = painter.worldTransform().mapRect(self.rect())
        painter.save()
        painter.resetTransform()
        painter.fillRect(device_rect, self._brush)
        painter.restore()


class RasterView(QWidget):
    """Shows one raster at a time; `show_raster` is a coroutine that reads its preview off the GUI thread.

    Signals:
        preview_shown(str): the path of the raster whose preview has just been drawn.
        preview_failed(str): the message of a raster whose preview could not be read.
    """

    preview_shown = Signal(str)
    preview_failed = Signal(str)

    def __init__(self, tasks: BackgroundTasks, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._tasks = tasks
        self._info: RasterInfo | None = None
        self._preview: Preview | None = None
        self._rgba: np.ndarray | None = None
        self._choices: dict[Path, DisplayChoice] = {}
        self._overlay_wanted = True
        self._probe: Callable[[float, float], str] | None = None

        self.controls = DisplayControls()
        self.controls.changed.connect(self._on_choice_changed)
        self.viewbox = pg.ViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.graphics = pg.GraphicsView()
        self.graphics.setCentralItem(self.viewbox)
        self.graphics.setBackground(CANVAS_COLOR)
        for widget in (self.graphics, self.graphics.viewport()):
            widget.setAcceptDrops(False)
        self.checkerboard = CheckerboardItem()
        self.checkerboard.setZValue(-1)
        self.checkerboard.hide()
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item.setZValue(1)
        self.overlay_item.hide()
        self.viewbox.addItem(self.checkerboard)
        self.viewbox.addItem(self.image_item)
        self.viewbox.addItem(self.overlay_item)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.graphics.viewport().installEventFilter(self)

        self.placeholder = QLabel()
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setWordWrap(True)
        self.placeholder.setObjectName("placeholder")
        self.stack = QStackedWidget()
        self.stack.addWidget(self.placeholder)
        self.stack.addWidget(self.graphics)
        # It wraps: the readout of a many-band raster is longer than any window is wide.
        self.cursor_label = QLabel(CURSOR_HINT)
        self.cursor_label.setObjectName("cursorReadout")
        self.cursor_label.setWordWrap(True)
        self.cursor_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.cursor_label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.MinimumExpanding)
        self.scale_label = QLabel()
        self.scale_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

        self.fit_button = QToolButton()
        self.fit_button.setText("Zoom to fit")
        self.fit_button.setToolTip("Show the whole raster (drag to pan, wheel to zoom)")
        self.fit_button.clicked.connect(self.reset_zoom)

        footer = QHBoxLayout()
        footer.addWidget(self.cursor_label, 1)
        footer.addWidget(self.scale_label, 0, Qt.AlignmentFlag.AlignTop)
        footer.addWidget(self.fit_button, 0, Qt.AlignmentFlag.AlignTop)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.controls)
        layout.addWidget(self.stack, 1)
        layout.addLayout(footer)

    @property
    def info(self) -> RasterInfo | None:
        return self._info

    @property
    def preview(self) -> Preview | None:
        """The preview drawn now; None while reading or when nothing is shown."""
        return self._preview

    def rendered_rgba(self) -> np.ndarray | None:
        """The RGBA pixels (rows, cols, 4) drawn for the current raster and display choice."""
        return self._rgba

    def show_placeholder(self, text: str) -> None:
        """Shows a message instead of an image (the empty state, or why a preview failed)."""
        self._info = None
        self._preview = None
        self._rgba = None
        self.image_item.clear()
        self.checkerboard.hide()
        self.set_overlay(None)
        self.placeholder.setText(text)
        self.stack.setCurrentWidget(self.placeholder)
        self.controls.setEnabled(False)
        self.cursor_label.setText("")
        self.scale_label.setText("")

    async def show_raster(self, info: RasterInfo) -> None:
        """Reads the raster's preview on a read thread and draws it; a failure shows its message."""
        if self._preview is not None and self._preview.info == info:
            return
        if self._info != info:
            self.set_overlay(None)
        self._info = info
        self._preview = None
        choice = self._choices.get(info.path) or DisplayChoice.default_for(info)
        self.controls.set_raster(info, choice)
        await self._read_and_draw(info, choice)

    def set_overlay(self, rgba: np.ndarray | None, opacity: float = 0.5) -> None:
        """Draws an RGBA uint8 (rows, cols, 4) layer of any resolution over the whole raster.

        Showing another raster removes the overlay. None removes it now.
        """
        if rgba is None:
            self.overlay_item.clear()
            self.overlay_item.hide()
            return
        if self._info is None:
            raise RuntimeError("Show a raster before setting an overlay on it.")
        if rgba.ndim != 3 or rgba.shape[2] != 4 or rgba.dtype != np.uint8:
            raise ValueError(f"An overlay is RGBA uint8 (rows, cols, 4), not {rgba.dtype} {rgba.shape}.")
        self.overlay_item.setImage(rgba, autoLevels=False)
        self.overlay_item.setRect(QRectF(0, 0, self._info.width, self._info.height))
        self.overlay_item.setOpacity(opacity)
        self.overlay_item.setVisible(self._overlay_wanted)

    def set_overlay_visible(self, visible: bool) -> None:
        """Hides or shows the overlay without forgetting it."""
        self._overlay_wanted = visible
        self.overlay_item.setVisible(visible and self.overlay_item.image is not None)

    def set_probe(self, probe: Callable[[float, float], str] | None) -> None:
        """A function of a full-resolution pixel position whose text joins the cursor readout
        (the predicted class or score under the cursor); None removes it."""
        self._probe = probe

    def reset_zoom(self) -> None:
        """Fits the whole raster in the view."""
        self.viewbox.autoRange(items=[self.image_item], padding=0.02)

    def describe_position(self, col: float, row: float) -> str:
        """Pixel, map coordinates and band values at a full-resolution pixel position, as one line."""
        info, preview = self._info, self._preview
        if info is None or preview is None:
            return ""
        if not (0 <= col < info.width and 0 <= row < info.height):
            return CURSOR_HINT
        x, y = Affine(*info.transform) * (col, row)
        digits = 6 if info.is_geographic else 2
        where = f"Pixel {int(col)}, {int(row)}   x {x:.{digits}f}  y {y:.{digits}f}  {info.crs or 'no CRS'}"
        values = preview.band_values(col, row)
        probed = self._probe(col, row) if self._probe is not None else ""
        result = f"   {probed}" if probed else ""
        if values is None:
            return f"{where}   nodata{result}"
        approx = "≈" if preview.decimation > 1 else ""
        bands = "  ".join(
            f"B{band} {approx}{_format_value(value)}"
            for band, value in zip(preview.bands, values, strict=True)
        )
        return f"{where}{result}   {bands}"

    async def _read_and_draw(self, info: RasterInfo, choice: DisplayChoice) -> None:
        self.cursor_label.setText(f"Reading a preview of {info.path.name}…")
        bands = None if len(info.data_bands) <= MAX_PREVIEW_BANDS else list(choice.bands)
        try:
            preview = await self._tasks.run_blocking(read_preview, info, bands)
        except EngineError as exc:
            if self._info == info:
                self.show_placeholder(str(exc))
                self.preview_failed.emit(str(exc))
            return
        if self._info != info:
            return
        self._preview = preview
        self._draw()
        self.stack.setCurrentWidget(self.graphics)
        self.reset_zoom()
        self._show_idle_readout()
        self.scale_label.setText(_scale_text(preview))
        self.preview_shown.emit(str(info.path))

    def _on_choice_changed(self) -> None:
        if self._info is None:
            return
        choice = self.controls.choice()
        self._choices[self._info.path] = choice
        if self._preview is None:
            return
        if all(band in self._preview.bands for band in choice.bands):
            self._draw()
        else:
            self._preview = None
            self._tasks.start(self._read_and_draw(self._info, choice), name="preview-bands")

    def _draw(self) -> None:
        assert self._preview is not None and self._info is not None
        choice = self.controls.choice()
        lut = colormap_lut(choice.colormap) if len(choice.bands) == 1 else None
        self._rgba = render_rgba(self._preview, choice.bands, choice.percentiles, lut)
        self.image_item.setImage(self._rgba, autoLevels=False)
        extent = QRectF(0, 0, self._info.width, self._info.height)
        self.image_item.setRect(extent)
        self.checkerboard.setRect(extent)
        self.checkerboard.show()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """The readout goes back to its hint when the cursor leaves the image."""
        if event.type() == QEvent.Type.Leave and self._preview is not None:
            self._show_idle_readout()
        return super().eventFilter(watched, event)

    def _show_idle_readout(self) -> None:
        assert self._preview is not None
        self.cursor_label.setText(CURSOR_HINT if self._preview.valid.any() else NO_DATA_TEXT)

    def _on_mouse_moved(self, scene_pos: QPointF) -> None:
        if self._preview is None:
            return
        point = self.viewbox.mapSceneToView(scene_pos)
        self.cursor_label.setText(self.describe_position(point.x(), point.y()))


def _format_value(value: float) -> str:
    return f"{value:.0f}" if value.is_integer() else f"{value:.4g}"


def _scale_text(preview: Preview) -> str:
    rows, cols = preview.shape
    full = f"{preview.info.width} × {preview.info.height} px"
    if preview.decimation <= 1:
        return f"{full}, full resolution"
    return f"{full}, preview {cols} × {rows} (1:{preview.decimation:.3g})"
