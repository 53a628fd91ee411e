"""The question an import of polygon labels asks: which layer, which class field, polygons or classes only.

The layers and their fields are read (on a read thread) before the dialog opens, so changing the
layer here refills the field picker without touching the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtWidgets import QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QWidget

from engine.labels.vector_file import LabelLayerInfo
from modelai_desktop.widgets.label_options import field_choices


@dataclass(frozen=True)
class ImportChoice:
    """What to import: ``classes_only`` takes the field's class names without any polygon."""

    layer: str
    field: str | None
    classes_only: bool = False


class ImportDialog(QDialog):
    """Asks for the layer (when there are several), the class field and whether to import polygons."""

    def __init__(self, layers: dict[str, LabelLayerInfo], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        first = next(iter(layers.values()))
        self.setWindowTitle(f"Import labels from {first.path.name}")
        self._layers = layers
        self.layer = QComboBox()
        for name, info in layers.items():
            self.layer.addItem(f"{name} ({info.feature_count} features)", name)
        self.layer.currentIndexChanged.connect(lambda _: self._fill_fields())
        self.field = QComboBox()
        self.field.setToolTip("The attribute with class names (or class ids) of the polygons")
        self.classes_only = QCheckBox("Only take its class names (import no polygons)")
        note = QLabel(
            "Polygons are drawn over the labels where they fall, as one step (Ctrl+Z undoes it). "
            "Class names the page has already are reused."
        )
        note.setWordWrap(True)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        if len(layers) > 1:
            form.addRow("Layer", self.layer)
        form.addRow("Class field", self.field)
        form.addRow(self.classes_only)
        form.addRow(note)
        form.addRow(buttons)
        self._fill_fields()

    def choice(self) -> ImportChoice:
        return ImportChoice(self.layer.currentData(), self.field.currentData(), self.classes_only.isChecked())

    def _fill_fields(self) -> None:
        self.field.clear()
        for text, name in field_choices(self._layers[self.layer.currentData()]):
            self.field.addItem(text, name)


def ask_import(parent: QWidget, layers: dict[str, LabelLayerInfo]) -> ImportChoice | None:
    """Shows the dialog (from a plain slot: it is modal); None when the person cancels."""
    dialog = ImportDialog(layers, parent)
    return dialog.choice() if dialog.exec() == QDialog.DialogCode.Accepted else None
