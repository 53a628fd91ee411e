"""The prediction settings form: tile, overlap, precision, probabilities, anomaly threshold, polygons,
overwrite.

It edits an `engine.inference.predict.PredictOptions` and nothing else, so what the window runs is exactly
what ``modelai predict`` would run with the same flags. Settings that do not apply to the chosen
model's task (probabilities for anomaly models, a threshold for segmentation) are hidden.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QSpinBox, QWidget

from engine.inference.predict import PredictOptions
from engine.models.metadata import ModelMetadata

PRECISIONS = {
    "Automatic": "auto",
    "32-bit float": "fp32",
    "bfloat16": "bf16",
    "float16 (GPU)": "fp16",
}
TILE_RANGE = (64, 4096)
TILE_STEP = 32


class PredictOptionsForm(QWidget):
    """A form whose `options()` is the `PredictOptions` to run; defaults are the engine's own."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        defaults = PredictOptions()
        self.tile = QSpinBox()
        self.tile.setRange(*TILE_RANGE)
        self.tile.setSingleStep(TILE_STEP)
        self.tile.setSuffix(" px")
        self.tile.setValue(defaults.tile)
        self.tile.setToolTip("Side of the square windows the network sees; larger is faster on a GPU")
        self.overlap = QSpinBox()
        self.overlap.setRange(0, TILE_RANGE[1] // 2)
        self.overlap.setSingleStep(16)
        self.overlap.setSuffix(" px")
        self.overlap.setValue(defaults.overlap)
        self.overlap.setToolTip("Pixels shared by neighbouring tiles, blended so that no seam shows")
        self.tile.valueChanged.connect(lambda tile: self.overlap.setMaximum(tile // 2))
        self.precision = QComboBox()
        self.precision.addItems(list(PRECISIONS))
        self.precision.setToolTip(
            "Automatic uses bfloat16 or float16 on a GPU, and bfloat16 on a CPU that runs it natively "
            "(AVX512-BF16 or AMX); 32-bit float elsewhere"
        )
        self.probabilities = QCheckBox("Also write class probabilities")
        self.probabilities.setToolTip("One float band per class beside the class mask (larger files)")
        self.custom_threshold = QCheckBox("Custom anomaly threshold")
        self.custom_threshold.setToolTip("Replace the threshold calibrated when the model was trained")
        self.threshold = QDoubleSpinBox()
        self.threshold.setDecimals(5)
        self.threshold.setRange(0.0, 1e6)
        self.threshold.setSingleStep(0.01)
        self.threshold.setEnabled(False)
        self.custom_threshold.toggled.connect(self.threshold.setEnabled)
        self.polygons = QCheckBox("Also write polygons (GeoPackage)")
        self.polygons.setToolTip(
            "One feature per region with its class (or mean anomaly score) and area, styled for QGIS"
        )
        self.min_area = QDoubleSpinBox()
        self.min_area.setRange(0.0, 1e9)
        self.min_area.setDecimals(1)
        self.min_area.setSuffix(" m²")
        self.min_area.setToolTip("Regions smaller than this are left out of the polygons (true areas)")
        self.simplify = QDoubleSpinBox()
        self.simplify.setRange(0.0, 100.0)
        self.simplify.setDecimals(1)
        self.simplify.setSuffix(" px")
        self.simplify.setToolTip(
            "Smooth the pixel staircase by up to this many pixels; neighbours keep sharing edges"
        )
        for dependent in (self.min_area, self.simplify):
            dependent.setEnabled(False)
            self.polygons.toggled.connect(dependent.setEnabled)
        self.overwrite = QCheckBox("Replace existing outputs")
        self.overwrite.setToolTip("Otherwise a folder that already holds these outputs is refused")
        self._anomaly = False
        self._form = QFormLayout(self)
        self._form.setContentsMargins(0, 0, 0, 0)
        self._form.addRow("Tile", self.tile)
        self._form.addRow("Overlap", self.overlap)
        self._form.addRow("Precision", self.precision)
        self._form.addRow(self.probabilities)
        self._form.addRow(self.custom_threshold)
        self._form.addRow("Threshold", self.threshold)
        self._form.addRow(self.polygons)
        self._form.addRow("Smallest region", self.min_area)
        self._form.addRow("Simplify edges", self.simplify)
        self._form.addRow(self.overwrite)
        self.set_model(None)

    def set_model(self, metadata: ModelMetadata | None) -> None:
        """Shows the settings that apply to the model's task; the threshold starts at the model's own."""
        anomaly = metadata is not None and metadata.task == "anomaly"
        self._anomaly = anomaly
        self._form.setRowVisible(self.probabilities, not anomaly)
        self._form.setRowVisible(self.custom_threshold, anomaly)
        self._form.setRowVisible(self.threshold, anomaly)
        self.custom_threshold.setChecked(False)
        if anomaly and metadata.anomaly and "threshold" in metadata.anomaly:
            self.threshold.setValue(float(metadata.anomaly["threshold"]))

    def options(self) -> PredictOptions:
        anomaly = self._anomaly
        return PredictOptions(
            tile=self.tile.value(),
            overlap=self.overlap.value(),
            precision=PRECISIONS[self.precision.currentText()],
            probabilities=self.probabilities.isChecked() and not anomaly,
            threshold=self.threshold.value() if anomaly and self.custom_threshold.isChecked() else None,
            overwrite=self.overwrite.isChecked(),
            polygons=self.polygons.isChecked(),
            min_area=self.min_area.value() if self.polygons.isChecked() else 0.0,
            simplify=self.simplify.value() if self.polygons.isChecked() else 0.0,
        )
