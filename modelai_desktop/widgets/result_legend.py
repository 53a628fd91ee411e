"""How a prediction looks over its raster: the overlay's colours, and the legend that explains them.

Both come from the summary the engine writes beside each result, so the colours on the preview, in
the legend and in the GeoTIFF's colour table are the same. A class mask is drawn in its class
colours; an anomaly heat map with a colour map stretched from the median error to a little above
the 99th percentile or the threshold, whichever is higher, with the threshold marked on the colour
bar. The lower half of the scale fades to transparent, so the raster shows where nothing is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QVBoxLayout, QWidget

from engine.inference.outputs import hex_to_rgb
from engine.rasters.preview import Preview, read_preview
from engine.rasters.read import read_info
from engine.vectorize.prediction import polygon_outlines

HEAT_COLORMAP = "inferno"
OUTLINE_RGBA = (255, 255, 255, 255)
HEAT_HEADROOM = 1.25
COLOR_BAR_SIZE = (260, 14)
SWATCH_SIZE = 14


def heat_lut() -> np.ndarray:
    """The (256, 4) uint8 colour map of anomaly heat maps."""
    return pg.colormap.get(HEAT_COLORMAP).getLookupTable(nPts=256, alpha=True)


def heat_limits(summary: Mapping[str, Any]) -> tuple[float, float]:
    """Low and high ends of the heat map's colour scale, from an anomaly summary."""
    heatmap = summary["heatmap"]
    low = float(heatmap["p50"])
    high = max(float(heatmap["p99"]), float(summary["threshold"])) * HEAT_HEADROOM
    return (low, high if high > low else low + 1e-6)


def class_overlay(values: np.ndarray, valid: np.ndarray, classes: list[Mapping[str, Any]]) -> np.ndarray:
    """RGBA uint8 of a class mask: each class in its colour, nodata and unknown ids transparent."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    for entry in classes:
        lut[int(entry["id"])] = (*hex_to_rgb(entry["color"]), 255)
    ids = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    rgba = lut[ids]
    rgba[~valid] = 0
    return rgba


def heat_overlay(values: np.ndarray, valid: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """RGBA uint8 of a heat map through `heat_lut`: transparent at the low end and on nodata."""
    low, high = limits
    levels = np.nan_to_num(np.clip((values - low) * (255.0 / (high - low)), 0, 255)).astype(np.uint8)
    rgba = heat_lut()[levels]
    rgba[..., 3] = np.minimum(levels.astype(np.uint16) * 2, 255)
    rgba[~valid] = 0
    return rgba


@dataclass(frozen=True)
class ResultLayer:
    """A prediction as drawn over its raster: the coloured overlay and the values under it."""

    rgba: np.ndarray
    values: Preview
    summary: Mapping[str, Any]

    def describe(self, col: float, row: float) -> str:
        """What the model says at a full-resolution pixel: its class, or its error and verdict."""
        values = self.values.band_values(col, row)
        if values is None:
            return ""
        value = values[0]
        if self.summary["task"] == "segmentation":
            names = {int(entry["id"]): entry["name"] for entry in self.summary["classes"]}
            return f"Result: {names.get(round(value), f'class {round(value)}')}"
        threshold = float(self.summary["threshold"])
        verdict = "anomaly" if value > threshold else "normal"
        return f"Error {value:.3g} ({verdict}; threshold {threshold:.3g})"


def render_result(summary: Mapping[str, Any], outputs: Mapping[str, Path]) -> ResultLayer:
    """Reads a prediction's main output at preview size and colours it, with the outlines of its
    polygons when it wrote them (blocking: run it on a read thread).

    The preview size follows `engine.rasters.preview.read_preview`, the same rule as the raster's own
    preview, so the overlay covers it pixel for pixel.

    Raises:
        RasterError: the output cannot be read (moved, deleted or damaged since the job).
    """
    if summary["task"] == "segmentation":
        preview = read_preview(read_info(outputs["classes"]), [1], resampling="nearest")
        overlay = class_overlay(preview.data[0], preview.valid, summary["classes"])
    else:
        preview = read_preview(read_info(outputs["anomaly"]), [1])
        overlay = heat_overlay(preview.data[0], preview.valid, heat_limits(summary))
    if "polygons" in outputs:
        overlay[polygon_outlines(outputs["polygons"], preview.shape, preview.transform)] = OUTLINE_RGBA
    return ResultLayer(overlay, preview, summary)


AREA_UNITS = ((1e6, "km²"), (1e4, "ha"), (1.0, "m²"))


def area_unit_for(areas: Sequence[float], unit: str) -> tuple[float, str]:
    """One unit for every area of a view (km², ha or m², by the largest), as a divisor and a symbol.

    Units other than square metres are kept as they are (divisor 1).
    """
    if unit != "square metres":
        return 1.0, unit.removeprefix("square ") + "²" if unit.startswith("square ") else ""
    largest = max(areas, default=0.0)
    return next((size, symbol) for size, symbol in AREA_UNITS if largest >= size or size == 1.0)


def format_area(area: float, scale: tuple[float, str]) -> str:
    """An area in the unit chosen by `area_unit_for` for its view."""
    size, symbol = scale
    value = area / size
    text = f"{value:,.2f}" if size > 1 else f"{value:,.0f}" if symbol == "m²" else f"{value:.4g}"
    return f"{text} {symbol}".rstrip()


def color_bar_pixmap(lut: np.ndarray, width: int, height: int, marker: float | None) -> QPixmap:
    """A horizontal colour bar of a LUT, with a vertical line at ``marker`` (0–1) when given."""
    row = np.ascontiguousarray(lut[np.linspace(0, 255, width).astype(int), :3])
    image = QImage(row.data, width, 1, 3 * width, QImage.Format.Format_RGB888).copy()
    pixmap = QPixmap.fromImage(image.scaled(width, height))
    if marker is not None:
        painter = QPainter(pixmap)
        painter.setPen(QPen(Qt.GlobalColor.white, 2))
        x = round(min(max(marker, 0.0), 1.0) * (width - 1))
        painter.drawLine(x, 0, x, height)
        painter.end()
    return pixmap


class ResultLegend(QWidget):
    """The legend and summary of one raster's prediction: class areas, or anomaly statistics."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel()
        self.title.setObjectName("sectionTitle")
        self.body = QWidget()
        self._grid = QGridLayout(self.body)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setHorizontalSpacing(12)
        self._grid.setVerticalSpacing(3)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.body)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        self.clear()

    def clear(self) -> None:
        self.title.setText("")
        self._clear_grid()
        self.hide()

    def texts(self) -> list[str]:
        """The text of every label, for tests and accessibility checks."""
        labels = [self._grid.itemAt(i).widget() for i in range(self._grid.count())]
        return [label.text() for label in labels if isinstance(label, QLabel) and label.text()]

    def show_summary(self, summary: Mapping[str, Any]) -> None:
        """Fills the legend from a prediction summary (``task``, classes or heat-map statistics).

        The title names the model that made the result, so a result left on screen after another
        model is chosen still says where it came from.
        """
        self._clear_grid()
        name = Path(str(summary["raster"])).name
        model = f" by {Path(str(summary['model'])).stem}" if summary.get("model") else ""
        if summary["task"] == "segmentation":
            self.title.setText(f"Classes of {name}{model}")
            self._fill_classes(summary)
        else:
            self.title.setText(f"Anomalies in {name}{model}")
            self._fill_heatmap(summary)
        self.show()

    def _fill_classes(self, summary: Mapping[str, Any]) -> None:
        scale = area_unit_for([entry["area"] for entry in summary["classes"]], summary["area_unit"])
        for row, entry in enumerate(summary["classes"]):
            swatch = QLabel()
            swatch.setFixedSize(SWATCH_SIZE, SWATCH_SIZE)
            swatch.setStyleSheet(f"background: {entry['color']}; border: 1px solid palette(dark);")
            self._grid.addWidget(swatch, row, 0)
            self._add_text(entry["name"], row, 1)
            self._add_text(f"{entry['fraction']:.1%}", row, 2, right=True)
            self._add_text(format_area(entry["area"], scale), row, 3, right=True)
        self._grid.setColumnStretch(4, 1)

    def _fill_heatmap(self, summary: Mapping[str, Any]) -> None:
        low, high = heat_limits(summary)
        threshold = float(summary["threshold"])
        bar = QLabel()
        width, height = COLOR_BAR_SIZE
        bar.setPixmap(color_bar_pixmap(heat_lut(), width, height, (threshold - low) / (high - low)))
        bar.setToolTip("Reconstruction error; the white line is the anomaly threshold")
        self._grid.addWidget(bar, 0, 0, 1, 3)
        self._add_text(f"{low:.3g}", 1, 0)
        self._add_text(f"{high:.3g}", 1, 2, right=True)
        heatmap = summary["heatmap"]
        area = summary["anomalous_area"]
        lines = (
            f"Reconstruction error; the white line is the threshold ({threshold:.4g})",
            f"Anomalous: {summary['anomalous_fraction']:.2%} of the valid pixels "
            f"({format_area(area, area_unit_for([area], summary['area_unit']))})",
            f"Error: mean {heatmap['mean']:.3g}, 99th percentile {heatmap['p99']:.3g}, "
            f"max {heatmap['max']:.3g}",
        )
        for offset, line in enumerate(lines):
            self._add_text(line, 2 + offset, 0, span=4)
        self._grid.setColumnStretch(3, 1)

    def _add_text(self, text: str, row: int, column: int, span: int = 1, right: bool = False) -> None:
        label = QLabel(text)
        if right:
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self._grid.addWidget(label, row, column, 1, span)

    def _clear_grid(self) -> None:
        while self._grid.count():
            widget = self._grid.takeAt(0).widget()
            if widget is not None:
                widget.deleteLater()
        for column in range(self._grid.columnCount()):
            self._grid.setColumnStretch(column, 0)
