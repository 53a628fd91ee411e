"""Options of a polygon label file on the Train page: the class field, unlabelled pixels, pixel rule,
and a preview of the rasterised labels over the first image.

The field picker lists the layer's attributes (read by the page on a read thread); its first entry
trains one class from every polygon. Every choice maps to an option of ``modelai train``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QGroupBox, QLabel, QWidget

from engine.labels.training import LabelSettings
from engine.labels.vector_file import LABEL_SUFFIXES, LabelLayerInfo

ONE_CLASS = "(none: every polygon is one class)"
UNLABELLED_CHOICES = (
    ("background", "are background (class 0): complete footprints"),
    ("ignore", "carry no label: scribbles, partial labels"),
)


def label_file_in(paths: list[Path]) -> Path | None:
    """The polygon file when the masks area holds exactly one (GeoPackage, Shapefile, GeoJSON…)."""
    if len(paths) == 1 and paths[0].suffix.lower() in LABEL_SUFFIXES:
        return paths[0]
    return None


def field_choices(info: LabelLayerInfo) -> list[tuple[str, str | None]]:
    """The class field picker's entries (text, field): one class for every polygon, then each field
    of class names or class ids."""
    usable = [(f"{name} ({kind})", name) for name, kind in info.fields.items() if kind != "other"]
    return [(ONE_CLASS, None), *usable]


class LabelOptions(QGroupBox):
    """The options of one label file; ``changed`` is emitted when one of them changes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Polygon labels", parent)
        self._path: Path | None = None
        self._layer: str | None = None
        self.field = QComboBox()
        self.field.setToolTip("The attribute with class names or class ids (--label-field)")
        self.unlabelled = QComboBox()
        for value, text in UNLABELLED_CHOICES:
            self.unlabelled.addItem(text, value)
        self.unlabelled.setToolTip("What pixels outside every polygon are (--unlabelled)")
        self.all_touched = QCheckBox("Every pixel a polygon touches")
        self.all_touched.setToolTip(
            "--all-touched, for thin or small polygons. Unchecked: pixels whose centre is inside"
        )
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        self.preview = QLabel()
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setToolTip("The rasterised labels over the first image, in each class's colour")
        form = QFormLayout(self)
        form.addRow("Class field", self.field)
        form.addRow("Pixels outside polygons", self.unlabelled)
        form.addRow("", self.all_touched)
        form.addRow(self.summary)
        form.addRow(self.preview)
        self.field.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.unlabelled.currentIndexChanged.connect(lambda _: self.changed.emit())
        self.all_touched.toggled.connect(lambda _: self.changed.emit())

    def show_layer(self, info: LabelLayerInfo) -> None:
        """Fills the field picker from the layer's attributes (text and whole-number fields)."""
        keep = self.field.currentData() if self._path == info.path else None
        self._path, self._layer = info.path, info.layer
        self.field.blockSignals(True)
        self.field.clear()
        for text, name in field_choices(info):
            self.field.addItem(text, name)
        if keep is not None and self.field.findData(keep) >= 0:
            self.field.setCurrentIndex(self.field.findData(keep))
        self.field.blockSignals(False)
        self.summary.setText(f"{info.path.name}: layer {info.layer}, {info.feature_count} features")

    def settings(self) -> LabelSettings | None:
        """The chosen options, once the file's layer has been read."""
        if self._path is None:
            return None
        return LabelSettings(
            self._path,
            self._layer,
            self.field.currentData(),
            self.unlabelled.currentData(),
            self.all_touched.isChecked(),
        )

    def show_preview(self, rgba: np.ndarray | None) -> None:
        if rgba is None:
            self.preview.clear()
            return
        rows, cols = rgba.shape[:2]
        image = QImage(np.ascontiguousarray(rgba).data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888)
        self.preview.setPixmap(QPixmap.fromImage(image.copy()))

    def forget(self) -> None:
        self._path = self._layer = None
        self.field.clear()
        self.summary.clear()
        self.preview.clear()
