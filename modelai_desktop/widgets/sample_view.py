"""A validation patch as the model sees it, refreshed at every epoch of a training run.

Segmentation shows the patch, its reference mask and the predicted classes in the class colours,
with a legend of the classes by name; pixels without a label are drawn as unlabelled in both masks,
since no score counts them. Anomaly detection shows the patch, its reconstruction and the per-pixel
error. Watching the prediction sharpen (or not) tells the user sooner than any number whether
training works.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import QGridLayout, QLabel, QSizePolicy, QWidget

from engine.datasets import IGNORE_INDEX
from engine.training.segmentation import default_color

PANEL_SIZE = 112
UNLABELLED_COLOR = "#d9d9d9"
UNLABELLED_NAME = "unlabelled"
ERROR_COLORMAP = "inferno"
ERROR_STRETCH_PERCENTILE = 99.5
SEGMENTATION_TITLES = ("Input", "Reference mask", "Prediction")
ANOMALY_TITLES = ("Input", "Reconstruction", "Error")
EMPTY_TEXT = "A validation patch appears here after the first epoch."


def class_lut(colors: Sequence[str]) -> np.ndarray:
    """A (256, 3) uint8 table: class id → colour; ids without a colour get the default palette."""
    table = np.array(
        [QColor(colors[i] if i < len(colors) else default_color(i)).getRgb()[:3] for i in range(256)],
        dtype=np.uint8,
    )
    table[IGNORE_INDEX] = QColor(UNLABELLED_COLOR).getRgb()[:3]
    return table


def error_rgb(errors: np.ndarray) -> np.ndarray:
    """An HxW error map as HxWx3 uint8, stretched from 0 to a high percentile of the errors."""
    finite = errors[np.isfinite(errors)]
    top = float(np.percentile(finite, ERROR_STRETCH_PERCENTILE)) if finite.size else 0.0
    scaled = np.clip(np.nan_to_num(errors) / top, 0, 1) if top > 0 else np.zeros_like(errors)
    lut = pg.colormap.get(ERROR_COLORMAP).getLookupTable(nPts=256, alpha=False)
    return lut[(scaled * 255).astype(np.uint8)]


def to_pixmap(rgb: np.ndarray) -> QPixmap:
    """An HxWx3 uint8 array as a pixmap (copied, so the array may go away)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


class SampleView(QWidget):
    """Three image panels with titles; `show_sample` takes an ``EpochEvent.sample`` dictionary."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._names: list[str] = []
        self._colors: list[str] = []
        self.titles = [QLabel() for _ in range(3)]
        self.panels = [QLabel() for _ in range(3)]
        self.caption = QLabel(EMPTY_TEXT)
        self.caption.setObjectName("placeholder")
        self.caption.setWordWrap(True)
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setHorizontalSpacing(8)
        layout.setVerticalSpacing(2)
        for column, (title, panel) in enumerate(zip(self.titles, self.panels, strict=True)):
            title.setAlignment(Qt.AlignmentFlag.AlignCenter)
            panel.setFixedSize(PANEL_SIZE, PANEL_SIZE)
            panel.setAlignment(Qt.AlignmentFlag.AlignCenter)
            panel.setStyleSheet("background: palette(midlight); border: 1px solid palette(mid);")
            panel.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            layout.addWidget(title, 0, column)
            layout.addWidget(panel, 1, column)
        layout.addWidget(self.caption, 2, 0, 1, 3)
        self.clear()

    def set_classes(self, names: Sequence[str], colors: Sequence[str]) -> None:
        """Names and colours of class ids 0, 1, ... (missing ones: ``class N`` in the default palette)."""
        self._names = list(names)
        self._colors = list(colors)

    def clear(self) -> None:
        for title, panel in zip(self.titles, self.panels, strict=True):
            title.setText("")
            panel.clear()
        self.caption.setText(EMPTY_TEXT)
        self.caption.show()

    def show_sample(self, sample: Mapping[str, np.ndarray], epoch: int | None = None) -> None:
        """Shows one epoch's sample arrays: segmentation (``target``) or anomaly (``reconstruction``)."""
        if "reconstruction" in sample:
            titles = ANOMALY_TITLES
            images = [sample["image"], sample["reconstruction"], error_rgb(sample["prediction"])]
            legend = ""
        else:
            titles = SEGMENTATION_TITLES
            lut = class_lut(self._colors)
            target = sample["target"]
            prediction = np.where(target == IGNORE_INDEX, IGNORE_INDEX, sample["prediction"])
            masks = [target, prediction]
            images = [sample["image"], *(lut[mask] for mask in masks)]
            legend = "<br>" + self._legend(masks)
        for title, panel, text, rgb in zip(self.titles, self.panels, titles, images, strict=True):
            title.setText(text)
            panel.setPixmap(
                to_pixmap(rgb).scaled(
                    PANEL_SIZE - 2,
                    PANEL_SIZE - 2,
                    Qt.AspectRatioMode.KeepAspectRatio,
                    Qt.TransformationMode.FastTransformation,
                )
            )
        caption = f"A validation patch after epoch {epoch}." if epoch is not None else "A validation patch."
        self.caption.setText(caption + legend)

    def _legend(self, masks: Sequence[np.ndarray]) -> str:
        """Colour chips with the names of the classes in the masks (class ids), and the unlabelled grey."""
        shown = sorted(set().union(*(np.unique(mask).tolist() for mask in masks)))
        lut = class_lut(self._colors)
        chips = [
            f"<span style='color:{QColor(*lut[class_id]).name()}'>■</span>&nbsp;{html.escape(name)}"
            for class_id in shown
            for name in [UNLABELLED_NAME if class_id == IGNORE_INDEX else self._class_name(class_id)]
        ]
        return " ".join(chips)

    def _class_name(self, class_id: int) -> str:
        return self._names[class_id] if class_id < len(self._names) else f"class {class_id}"

    def shown_image(self, panel: int) -> QImage:
        """The image a panel shows now (empty when none), for tests and screenshots."""
        pixmap = self.panels[panel].pixmap()
        return pixmap.toImage() if pixmap is not None else QImage()
