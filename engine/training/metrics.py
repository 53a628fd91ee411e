"""Segmentation scores from a confusion matrix, with absent classes kept apart.

A class that appears neither in the reference nor in the prediction has no IoU: counting it as 1.0
would flatter the mean, counting it as 0 would punish the model for the data. It is listed as absent
and left out of the means (JSON has no NaN, so it is omitted rather than stored as one). A class
predicted where the reference has none scores 0, because every one of those pixels is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def confusion_matrix(target: torch.Tensor, prediction: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts (reference class, predicted class) pairs over pixels whose target is a class id.

    Pixels whose target is ``>= num_classes`` (the ignore index) are not counted.
    """
    keep = target < num_classes
    pairs = target[keep].to(torch.int64) * num_classes + prediction[keep].to(torch.int64)
    return torch.bincount(pairs, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


@dataclass(frozen=True)
class SegmentationScores:
    """Per-class IoU and F1 (present classes only), their means, pixel accuracy, absent class ids."""

    iou: dict[int, float]
    f1: dict[int, float]
    absent: list[int]
    accuracy: float

    @property
    def mean_iou(self) -> float | None:
        return float(np.mean(list(self.iou.values()))) if self.iou else None

    @property
    def mean_f1(self) -> float | None:
        return float(np.mean(list(self.f1.values()))) if self.f1 else None


def segmentation_scores(matrix: np.ndarray) -> SegmentationScores:
    """IoU = TP / (TP + FP + FN) and F1 = 2TP / (2TP + FP + FN) per class of a confusion matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    true_positive = np.diag(matrix)
    false_positive = matrix.sum(axis=0) - true_positive
    false_negative = matrix.sum(axis=1) - true_positive
    union = true_positive + false_positive + false_negative
    iou: dict[int, float] = {}
    f1: dict[int, float] = {}
    absent: list[int] = []
    for class_id in range(matrix.shape[0]):
        if union[class_id] == 0:
            absent.append(class_id)
            continue
        iou[class_id] = float(true_positive[class_id] / union[class_id])
        f1[class_id] = float(2 * true_positive[class_id] / (union[class_id] + true_positive[class_id]))
    total = matrix.sum()
    accuracy = float(true_positive.sum() / total) if total else 0.0
    return SegmentationScores(iou, f1, absent, accuracy)
