"""Class ids and names from a label layer's class field, in a stable, documented order.

The rules (README "Train from polygons"):

- No field: every polygon is class 1, named after the layer; class 0 is "background".
- Text field: the distinct names sorted by Unicode code point (so the same file always gives the
  same ids). With ``unlabelled="background"`` class 0 is "background" (a text value "background",
  in any case, is that class) and the names follow from 1; with ``unlabelled="ignore"`` they start at 0.
- Integer field: the values are the class ids (0-254), named "class N" ("background" for 0 when
  unlabelled pixels are background).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.datasets import IGNORE_INDEX
from engine.labels.vector_file import LabelFeatures, LabelFileError

UNLABELLED_CHOICES = ("background", "ignore")
BACKGROUND = "background"


@dataclass(frozen=True)
class ClassScheme:
    """Class names by id (index = id) and the class id of every feature."""

    names: list[str]
    feature_ids: np.ndarray


def class_scheme(features: LabelFeatures, field: str | None, unlabelled: str) -> ClassScheme:
    """Gives every feature its class id and every id its name (see the module's rules).

    Raises:
        LabelFileError: an integer class outside 0-254, a fractional number, or too many text classes.
    """
    if unlabelled not in UNLABELLED_CHOICES:
        raise LabelFileError(
            f"--unlabelled must be one of {', '.join(UNLABELLED_CHOICES)}, not {unlabelled!r}."
        )
    count = len(features.geometries)
    if features.values is None:
        return ClassScheme([BACKGROUND, features.layer], np.ones(count, dtype=np.uint8))
    values = features.values
    if all(isinstance(value, str) for value in values):
        return _text_scheme(features, field, values, unlabelled)
    return _integer_scheme(features, field, values, unlabelled)


def _text_scheme(
    features: LabelFeatures, field: str | None, values: np.ndarray, unlabelled: str
) -> ClassScheme:
    background = unlabelled == "background"
    names = sorted({str(v) for v in values if not (background and str(v).lower() == BACKGROUND)})
    first = 1 if background else 0
    if len(names) + first > IGNORE_INDEX:
        raise LabelFileError(
            f"The field {field!r} of {features.path} holds {len(names)} different class names; at most "
            f"{IGNORE_INDEX - first} fit a class mask. Choose a field with fewer classes."
        )
    ids = {name: first + index for index, name in enumerate(names)}
    feature_ids = np.array(
        [0 if background and str(v).lower() == BACKGROUND else ids[str(v)] for v in values], dtype=np.uint8
    )
    return ClassScheme(([BACKGROUND] if background else []) + names, feature_ids)


def _integer_scheme(
    features: LabelFeatures, field: str | None, values: np.ndarray, unlabelled: str
) -> ClassScheme:
    numbers = np.array(values, dtype=np.float64)
    bad = numbers[(numbers != np.round(numbers)) | (numbers < 0) | (numbers >= IGNORE_INDEX)]
    if bad.size:
        raise LabelFileError(
            f"The field {field!r} of {features.path} holds {bad[0]:g}, which is no class id: integer class "
            f"fields hold whole numbers 0-{IGNORE_INDEX - 1}. Choose a field of class names or ids."
        )
    feature_ids = numbers.astype(np.uint8)
    names = [f"class {class_id}" for class_id in range(int(feature_ids.max()) + 1)]
    if unlabelled == "background":
        names[0] = BACKGROUND
    return ClassScheme(names, feature_ids)
