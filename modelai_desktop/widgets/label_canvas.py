"""The label canvas: the raster, the painted labels and the model's overlays, with the paint tools.

Layers, bottom to top: the decimated preview of the whole raster; a sharp window of the part on screen
(read by the page at screen resolution, full resolution when zoomed in); the prediction or the
uncertainty overlay; the labels; the polygon being drawn and the brush outline. Only the visible part
of the labels is drawn, at screen resolution, so painting stays fast on a 20000 x 20000 raster.

Mouse: the brush and the eraser paint with the left button (a click is a dab, a drag a stroke); the
polygon tool adds a vertex per click and closes on a double-click (or Enter, see the page). The middle
button always pans (the left button too with the pan tool); the wheel zooms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsEllipseItem, QGraphicsPathItem, QVBoxLayout, QWidget
from rasterio.windows import Window

from engine.inference.outputs import hex_to_rgb
from engine.labels.tiles import UNLABELLED, LabelTiles

TOOLS = ("brush", "eraser", "polygon", "pan")
CANVAS_COLOR = "#c9cdd2"
VIEW_SETTLE_MS = 150
OUTLINE_COLOR = "#ffffff"
POLYGON_COLOR = "#ffd400"


def class_lut(colors: Sequence[str], alpha: int = 255) -> np.ndarray:
    """A (256, 4) uint8 table from class id to RGBA; 255 (unlabelled) and unknown ids transparent."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    for class_id, color in enumerate(colors[:UNLABELLED]):
        lut[class_id] = (*hex_to_rgb(color), alpha)
    return lut


class PaintViewBox(pg.ViewBox):
    """A ViewBox that hands left-button drags and clicks to the canvas's tool instead of panning."""

    def __init__(self, canvas: LabelCanvas) -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._canvas = canvas

    def mouseDragEvent(self, ev: Any, axis: int | None = None) -> None:
        if ev.button() == Qt.MouseButton.LeftButton and self._canvas.tool in ("brush", "eraser"):
            ev.accept()
            self._canvas.drag_paint(self.mapSceneToView(ev.scenePos()), ev.isStart(), ev.isFinish())
            return
        if ev.button() == Qt.MouseButton.LeftButton and self._canvas.tool == "polygon":
            ev.ignore()
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev: Any) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self._canvas.tool == "pan":
            super().mouseClickEvent(ev)
            return
        ev.accept()
        point = self.mapSceneToView(ev.scenePos())
        if self._canvas.tool == "polygon":
            if ev.double():
                self._canvas.close_polygon()
            else:
                self._canvas.add_vertex(point)
        else:
            self._canvas.dab(point)

    def hoverEvent(self, ev: Any) -> None:
        if not ev.isExit():
            self._canvas.move_outline(self.mapSceneToView(ev.scenePos()))


class LabelCanvas(QWidget):
    """Shows a raster with its labels and edits the labels with the current tool.

    Signals:
        stroke_finished(): an edit ended (a stroke, a dab, a polygon, an undo or redo).
        view_changed(): the visible part settled after a pan, zoom or resize.
        cursor_moved(float, float): the cursor's column and row in raster pixels.
    """

    stroke_finished = Signal()
    view_changed = Signal()
    cursor_moved = Signal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tool = "brush"
        self.brush_size = 9
        self.current_class = 0
        self.tiles: LabelTiles | None = None
        self.vertices: list[tuple[float, float]] = []
        self._lut = class_lut([])
        self._last_point: tuple[float, float] | None = None
        self.viewbox = PaintViewBox(self)
        self.graphics = pg.GraphicsView()
        self.graphics.setCentralItem(self.viewbox)
        self.graphics.setBackground(CANVAS_COLOR)
        for widget in (self.graphics, self.graphics.viewport()):
            widget.setAcceptDrops(False)
        self.overview_item = pg.ImageItem(axisOrder="row-major")
        self.detail_item = pg.ImageItem(axisOrder="row-major")
        self.overlay_item = pg.ImageItem(axisOrder="row-major")
        self.labels_item = pg.ImageItem(axisOrder="row-major")
        for z, item in enumerate((self.overview_item, self.detail_item, self.overlay_item, self.labels_item)):
            item.setZValue(z)
            self.viewbox.addItem(item)
        self.polygon_item = QGraphicsPathItem()
        self.polygon_item.setPen(_cosmetic_pen(POLYGON_COLOR, 2))
        self.polygon_item.setZValue(10)
        self.outline_item = QGraphicsEllipseItem()
        self.outline_item.setPen(_cosmetic_pen(OUTLINE_COLOR, 1.5))
        self.outline_item.setZValue(11)
        self.outline_item.hide()
        self.viewbox.addItem(self.polygon_item)
        self.viewbox.addItem(self.outline_item)
        self._settle = QTimer(self, singleShot=True, interval=VIEW_SETTLE_MS)
        self._settle.timeout.connect(self.view_changed)
        self._settle.timeout.connect(self.refresh_labels)
        self.viewbox.sigRangeChanged.connect(lambda *_: self._settle.start())
        self.viewbox.sigResized.connect(lambda *_: self._settle.start())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

    def show_raster(self, rgba: np.ndarray, height: int, width: int) -> None:
        """Draws the whole raster's preview (any resolution) over ``height`` x ``width`` raster pixels."""
        self.set_overview(rgba)
        self.overview_item.setRect(QRectF(0, 0, width, height))
        self.detail_item.clear()
        self.overlay_item.clear()
        self.reset_zoom()

    def set_overview(self, rgba: np.ndarray) -> None:
        """Redraws the whole raster's preview (another band choice or stretch) where it is."""
        self.overview_item.setImage(rgba, autoLevels=False)

    def set_labels(self, tiles: LabelTiles, colors: Sequence[str]) -> None:
        self.tiles = tiles
        self.set_colors(colors)

    def set_colors(self, colors: Sequence[str]) -> None:
        self._lut = class_lut(colors)
        self.refresh_labels()

    def set_opacity(self, opacity: float) -> None:
        self.labels_item.setOpacity(opacity)

    def set_detail(self, rgba: np.ndarray, window: Window) -> None:
        """A sharper picture of ``window`` (raster pixels) drawn over the preview."""
        self.detail_item.setImage(rgba, autoLevels=False)
        self.detail_item.setRect(_window_rect(window))

    def set_overlay(self, rgba: np.ndarray | None, window: Window | None = None) -> None:
        """The prediction or uncertainty picture of ``window``; None removes it."""
        if rgba is None or window is None:
            self.overlay_item.clear()
            return
        self.overlay_item.setImage(rgba, autoLevels=False)
        self.overlay_item.setRect(_window_rect(window))

    def reset_zoom(self) -> None:
        self.viewbox.autoRange(items=[self.overview_item], padding=0.02)

    def visible_window(self) -> Window | None:
        """The part of the raster on screen, in whole raster pixels; None when nothing is shown."""
        if self.tiles is None:
            return None
        rect = self.viewbox.viewRect()
        left, top = max(0, int(np.floor(rect.left()))), max(0, int(np.floor(rect.top())))
        right = min(self.tiles.width, int(np.ceil(rect.right())))
        bottom = min(self.tiles.height, int(np.ceil(rect.bottom())))
        if right <= left or bottom <= top:
            return None
        return Window(left, top, right - left, bottom - top)

    def screen_shape(self, window: Window) -> tuple[int, int]:
        """Rows and columns of screen pixels ``window`` covers now (never more than the window itself)."""
        rect = self.viewbox.viewRect()
        pixels_per_unit = self.viewbox.width() / max(rect.width(), 1e-9)
        rows = max(1, min(int(window.height), round(window.height * pixels_per_unit)))
        cols = max(1, min(int(window.width), round(window.width * pixels_per_unit)))
        return rows, cols

    def refresh_labels(self) -> None:
        """Redraws the visible part of the labels at screen resolution."""
        window = self.visible_window()
        if window is None or self.tiles is None:
            self.labels_item.clear()
            return
        rows, cols = self.screen_shape(window)
        step = max(1, int(min(window.height / rows, window.width / cols)))
        values = self.tiles.read(
            int(window.row_off), int(window.col_off), int(window.height), int(window.width), step
        )
        self.labels_item.setImage(self._lut[values], autoLevels=False)
        self.labels_item.setRect(
            QRectF(window.col_off, window.row_off, values.shape[1] * step, values.shape[0] * step)
        )

    def paint_value(self) -> int:
        return UNLABELLED if self.tool == "eraser" else self.current_class

    def dab(self, point: QPointF) -> None:
        """One click of the brush or eraser: a disk, as its own undoable stroke."""
        if self.tiles is None:
            return
        self.tiles.begin_stroke()
        self.tiles.paint_disk(point.y(), point.x(), self.brush_size / 2, self.paint_value())
        self._finish_edit()

    def drag_paint(self, point: QPointF, start: bool, finish: bool) -> None:
        """A brush or eraser drag: the first event starts a stroke, the last one ends it."""
        if self.tiles is None:
            return
        here = (point.y(), point.x())
        if start or self._last_point is None:
            self.tiles.begin_stroke()
            self._last_point = here
        self.tiles.paint_line(self._last_point, here, self.brush_size / 2, self.paint_value())
        self._last_point = here
        self.move_outline(point)
        if finish:
            self._last_point = None
            self._finish_edit()
        else:
            self.refresh_labels()

    def add_vertex(self, point: QPointF) -> None:
        self.vertices.append((point.y(), point.x()))
        self._draw_polygon()

    def close_polygon(self) -> bool:
        """Fills the polygon drawn so far with the current class (an undoable stroke)."""
        vertices, self.vertices = self.vertices, []
        self._draw_polygon()
        if self.tiles is None or len(vertices) < 3:
            return False
        self.tiles.begin_stroke()
        self.tiles.paint_polygon(vertices, self.paint_value())
        self._finish_edit()
        return True

    def cancel_polygon(self) -> None:
        self.vertices = []
        self._draw_polygon()

    def undo(self) -> bool:
        if self.tiles is None or not self.tiles.undo():
            return False
        self._finish_edit()
        return True

    def redo(self) -> bool:
        if self.tiles is None or not self.tiles.redo():
            return False
        self._finish_edit()
        return True

    def move_outline(self, point: QPointF) -> None:
        """Puts the brush outline (its true size in raster pixels) under the cursor."""
        radius = self.brush_size / 2
        self.outline_item.setRect(QRectF(point.x() - radius, point.y() - radius, 2 * radius, 2 * radius))
        self.outline_item.setVisible(self.tool in ("brush", "eraser"))
        self.cursor_moved.emit(point.x(), point.y())

    def _finish_edit(self) -> None:
        if self.tiles is not None:
            self.tiles.end_stroke()
        self.refresh_labels()
        self.stroke_finished.emit()

    def _draw_polygon(self) -> None:
        path = QPainterPath()
        if self.vertices:
            path.moveTo(self.vertices[0][1], self.vertices[0][0])
            for row, col in self.vertices[1:]:
                path.lineTo(col, row)
        self.polygon_item.setPath(path)


def _window_rect(window: Window) -> QRectF:
    return QRectF(window.col_off, window.row_off, window.width, window.height)


def _cosmetic_pen(color: str, width: float) -> QPen:
    pen = QPen(QColor(color), width)
    pen.setCosmetic(True)
    return pen
