"""The controls that say how a raster is displayed: band composite or single band, colour map, stretch.

Kept apart from the view so the view only draws, and so that a page can read or set the choice as
one value (`DisplayChoice`) and remember it per raster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QLayout, QWidget

from engine.rasters.preview import DEFAULT_PERCENTILES
from engine.rasters.read import RasterInfo

COLORMAPS = ("gray", "viridis", "magma", "cividis", "turbo")
COMPOSITE, SINGLE = "Band composite", "Single band"
MAX_BAND_COMBO_WIDTH = 240
# Band boxes show their whole name where there is room and give way down to "Band 12" where there
# is not (the full names show when a box opens), so the row fits a 1024-pixel-wide screen.
SHORTEST_BAND_TEXT = "Band 12"
COMBO_ARROW_WIDTH = 30


@dataclass(frozen=True)
class DisplayChoice:
    """Three bands (red, green, blue) or one band with a colour map, and the percentile stretch."""

    bands: tuple[int, ...]
    colormap: str = "gray"
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES

    @classmethod
    def default_for(cls, info: RasterInfo) -> DisplayChoice:
        """True colour when the bands are named (described or colour-tagged) red, green and blue;
        else the first three bands. A raster with fewer than three data bands shows its first band in grey.
        """
        bands = info.data_bands
        named = {(info.band_name(band) or "").lower(): band for band in bands}
        if all(colour in named for colour in ("red", "green", "blue")):
            return cls((named["red"], named["green"], named["blue"]))
        return cls(tuple(bands[:3]) if len(bands) >= 3 else (bands[0],))


def colormap_lut(name: str) -> np.ndarray | None:
    """A (256, 4) uint8 lookup table for a colour map name; None for plain grey."""
    if name == "gray":
        return None
    return pg.colormap.get(name).getLookupTable(nPts=256, alpha=True)


def band_label(info: RasterInfo, band: int) -> str:
    name = info.band_name(band)
    return f"Band {band} · {name.capitalize() if name.islower() else name}" if name else f"Band {band}"


class DisplayControls(QWidget):
    """A row of combo boxes and spin boxes; emits `changed` whenever the choice changes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._updating = False
        self.mode = QComboBox()
        self.mode.addItems([COMPOSITE, SINGLE])
        self.mode.setToolTip("Show three bands as red, green and blue, or one band with a colour map")
        self.red, self.green, self.blue, self.single = (QComboBox() for _ in range(4))
        for combo in (self.red, self.green, self.blue, self.single):
            shortest = combo.fontMetrics().horizontalAdvance(SHORTEST_BAND_TEXT) + COMBO_ARROW_WIDTH
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumWidth(shortest)
            combo.setMaximumWidth(MAX_BAND_COMBO_WIDTH)
        self.colormap = QComboBox()
        self.colormap.addItems(COLORMAPS)
        self.low = _percent_box("Lower stretch limit: this percentile of valid pixels shows as black")
        self.high = _percent_box("Upper stretch limit: this percentile of valid pixels shows at full colour")
        self.composite_row = _row(QLabel("R"), self.red, QLabel("G"), self.green, QLabel("B"), self.blue)
        self.single_row = _row(self.single, QLabel("Colours"), self.colormap)
        self.bands_row = _row(self.mode, self.composite_row, self.single_row)
        self.stretch_row = _row(QLabel("Stretch"), self.low, QLabel("–"), self.high)
        self.stretch_row.layout().addStretch(1)
        # One line where it fits, the stretch below the bands where it does not (a narrow view).
        self._grid = QGridLayout(self)
        self._grid.setContentsMargins(0, 0, 0, 0)
        self._grid.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self._grid.setColumnStretch(2, 1)
        self._wrapped: bool | None = None
        self._place_rows(wrapped=False)
        for combo in (self.mode, self.red, self.green, self.blue, self.single, self.colormap):
            combo.currentIndexChanged.connect(self._emit_changed)
        for box in (self.low, self.high):
            box.valueChanged.connect(self._emit_changed)
        self._show_mode_row()
        self.setEnabled(False)

    def minimumSizeHint(self) -> QSize:
        """As narrow as the wider of the two rows: the stretch wraps below the bands when needed."""
        rows = (self.bands_row.minimumSizeHint(), self.stretch_row.minimumSizeHint())
        height = rows[0].height() + rows[1].height() + self._grid.verticalSpacing()
        return QSize(
            max(row.width() for row in rows), height if self._wrapped else max(r.height() for r in rows)
        )

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        one_line = self.bands_row.sizeHint().width() + self.stretch_row.sizeHint().width()
        self._place_rows(wrapped=event.size().width() < one_line + self._grid.horizontalSpacing())

    def _place_rows(self, wrapped: bool) -> None:
        if wrapped == self._wrapped:
            return
        self._wrapped = wrapped
        self._grid.addWidget(self.bands_row, 0, 0)
        self._grid.addWidget(self.stretch_row, 1 if wrapped else 0, 0 if wrapped else 1)
        self.updateGeometry()

    def set_raster(self, info: RasterInfo, choice: DisplayChoice) -> None:
        """Lists the raster's data bands, enables the controls and shows ``choice`` (one `changed`)."""
        self._updating = True
        for combo in (self.red, self.green, self.blue, self.single):
            combo.clear()
            for band in info.data_bands:
                combo.addItem(band_label(info, band), band)
        self.mode.model().item(0).setEnabled(len(info.data_bands) >= 3)
        self._updating = False
        self.set_choice(choice)
        self.setEnabled(True)

    def set_choice(self, choice: DisplayChoice) -> None:
        """Shows a choice (bands must be data bands of the current raster) and emits `changed` once."""
        self._updating = True
        composite = len(choice.bands) == 3
        self.mode.setCurrentIndex(0 if composite else 1)
        self._show_mode_row()
        combos = (self.red, self.green, self.blue) if composite else (self.single,)
        for combo, band in zip(combos, choice.bands, strict=True):
            combo.setCurrentIndex(combo.findData(band))
        self.colormap.setCurrentText(choice.colormap)
        self.low.setValue(choice.percentiles[0])
        self.high.setValue(choice.percentiles[1])
        self._updating = False
        self.changed.emit()

    def choice(self) -> DisplayChoice:
        composite = self.mode.currentIndex() == 0
        combos = (self.red, self.green, self.blue) if composite else (self.single,)
        low, high = sorted((self.low.value(), self.high.value()))
        return DisplayChoice(
            bands=tuple(int(combo.currentData()) for combo in combos),
            colormap=self.colormap.currentText(),
            percentiles=(low, high),
        )

    def _emit_changed(self) -> None:
        if self._updating:
            return
        self._show_mode_row()
        self.changed.emit()

    def _show_mode_row(self) -> None:
        composite = self.mode.currentIndex() == 0
        self.composite_row.setVisible(composite)
        self.single_row.setVisible(not composite)


def _percent_box(tooltip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(0.0, 100.0)
    box.setDecimals(1)
    box.setSingleStep(0.5)
    box.setSuffix(" %")
    box.setToolTip(tooltip)
    box.setKeyboardTracking(False)
    return box


def _row(*widgets: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return row
