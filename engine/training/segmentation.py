"""Semantic segmentation: a U-Net trained with cross-entropy plus soft Dice, scored by IoU and F1.

Cross-entropy alone lets a rare class (a road among fields) drown in the common ones; the Dice term
weighs every class by its own overlap, so thin and small classes still pull on the weights. Pixels
with the ignore index (nodata, unlabelled, padding) count in neither term nor in any metric.
"""

from __future__ import annotations

import colorsys
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from engine.datasets import IGNORE_INDEX, ImagePair, class_count
from engine.errors import DatasetError
from engine.models.metadata import ClassInfo
from engine.training.config import TrainConfig
from engine.training.metrics import confusion_matrix, segmentation_scores
from engine.training.previews import rgb_previews

DICE_SMOOTHING = 1.0
# Below this validation IoU a class counts as not learned (a warning, not a failure).
POOR_CLASS_IOU = 0.1
PALETTE = (
    "#7fbf4d", "#8c8c8c", "#e8402a", "#2a6fe8", "#f2c12e", "#9b59b6",
    "#1abc9c", "#e67e22", "#34495e", "#ff77aa", "#8b5a2b", "#00bcd4",
)  # fmt: skip
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


def cross_entropy_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy over labelled pixels (weighted mean with ``class_weights``) plus (1 - mean soft Dice).

    Batches without any labelled pixel give 0 instead of NaN.
    """
    num_classes = logits.shape[1]
    labelled = target != IGNORE_INDEX
    weights = class_weights.to(logits.device) if class_weights is not None else None
    summed = F.cross_entropy(logits, target, weight=weights, ignore_index=IGNORE_INDEX, reduction="sum")
    count = (weights[target[labelled]].sum() if weights is not None else labelled.sum()).clamp(min=1e-6)
    cross_entropy = summed / count
    weight = labelled.unsqueeze(1).to(logits.dtype)
    probabilities = logits.softmax(dim=1) * weight
    one_hot = F.one_hot(torch.where(labelled, target, 0), num_classes).permute(0, 3, 1, 2) * weight
    intersection = (probabilities * one_hot).sum(dim=(0, 2, 3))
    cardinality = (probabilities + one_hot).sum(dim=(0, 2, 3))
    dice = (2 * intersection + DICE_SMOOTHING) / (cardinality + DICE_SMOOTHING)
    return cross_entropy + (1 - dice.mean())


class SegmentationValidator:
    """Accumulates a confusion matrix; reports IoU/F1 per class and their means over present classes."""

    def __init__(self, classes: Sequence[ClassInfo]) -> None:
        self.classes = list(classes)
        self.matrix: torch.Tensor | None = None

    def update(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        counts = confusion_matrix(batch["target"], output.argmax(dim=1), len(self.classes))
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def result(self) -> tuple[dict[str, float], dict[str, Any]]:
        assert self.matrix is not None, "result() needs at least one update()"
        scores = segmentation_scores(self.matrix.cpu().numpy())
        metrics: dict[str, float] = {"pixel_accuracy": scores.accuracy}
        if scores.mean_iou is not None and scores.mean_f1 is not None:
            metrics["mean_iou"] = scores.mean_iou
            metrics["mean_f1"] = scores.mean_f1
        names = {info.id: info.name for info in self.classes}
        metrics.update({f"iou/{names[i]}": value for i, value in scores.iou.items()})
        metrics.update({f"f1/{names[i]}": value for i, value in scores.f1.items()})
        return metrics, {"absent_classes": [names[i] for i in scores.absent]}


@dataclass
class SegmentationTask:
    """The segmentation side of the training loop (see `engine.training.contract.TrainingTask`)."""

    classes: list[ClassInfo]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    class_weights: torch.Tensor | None = None
    architecture: ClassVar[str] = "unet"
    monitor: ClassVar[str] = "mean_iou"
    higher_is_better: ClassVar[bool] = True

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return cross_entropy_dice_loss(output, batch["target"], self.class_weights)

    def validator(self) -> SegmentationValidator:
        return SegmentationValidator(self.classes)

    def sample(
        self, output: torch.Tensor, batch: dict[str, torch.Tensor], index: int
    ) -> dict[str, np.ndarray]:
        """RGB of the patch's first bands, the reference classes and the predicted classes (uint8)."""
        (image,) = rgb_previews(batch["valid"][index], batch["image"][index])
        return {
            "image": image,
            "target": batch["target"][index].to(torch.uint8).cpu().numpy(),
            "prediction": output[index].argmax(dim=0).to(torch.uint8).cpu().numpy(),
        }

    def anomaly_section(self, best_entry: dict[str, Any] | None) -> None:
        """Segmentation models carry no anomaly threshold."""
        return None


def make_segmentation_task(
    config: TrainConfig, pairs: Sequence[ImagePair], in_channels: int
) -> SegmentationTask:
    """Classes from the masks (ids 0..highest) named and coloured by the config or by default.

    Raises:
        DatasetError: fewer class names or colours than classes, or a colour that is not #rrggbb.
    """
    names = config.class_names or []
    colors = config.class_colors or []
    count = max(class_count(pairs), len(names))
    if names and len(names) < count:
        raise DatasetError(
            f"{len(names)} class name(s) given, but the masks hold class ids up to {count - 1} "
            f"({count} classes). Give one name per class id, starting at 0."
        )
    if colors and len(colors) < count:
        raise DatasetError(f"{len(colors)} class colour(s) given for {count} classes; give one per class.")
    bad = [color for color in colors if not _COLOR.fullmatch(color)]
    if bad:
        raise DatasetError(f"Class colour {bad[0]!r} is not of the form #rrggbb (e.g. #2a6fe8).")
    classes = [
        ClassInfo(
            id=class_id,
            name=names[class_id] if names else f"class {class_id}",
            color=colors[class_id] if colors else default_color(class_id),
        )
        for class_id in range(count)
    ]
    hyperparameters = {
        "in_channels": in_channels,
        "num_classes": count,
        "base_width": config.network_width,
        "depth": config.network_depth,
    }
    if config.pixel_width:
        hyperparameters["pixel_width"] = config.pixel_width
    return SegmentationTask(classes, hyperparameters)


def poorly_learned_warning(best_entry: dict[str, Any] | None) -> str | None:
    """Names the classes the kept model barely found in validation, so a weak model is not taken as good.

    A run that ended too soon (a short budget on a slow CPU, too few labels of a class) still writes a
    model; its best epoch's IoU per class says whether that model can be trusted for those classes.
    """
    if best_entry is None:
        return None
    poor = {
        name.removeprefix("iou/"): value
        for name, value in best_entry["metrics"].items()
        if name.startswith("iou/") and value < POOR_CLASS_IOU
    }
    if not poor:
        return None
    listed = ", ".join(f"{name!r} (IoU {value:.2f})" for name, value in poor.items())
    which = "this class" if len(poor) == 1 else "these classes"
    return (
        f"The model barely learned {listed} on the validation part, at its best epoch "
        f"{best_entry['epoch']}: do not trust its map for {which}. Train longer (--time-budget or "
        "--epochs), label more of it, or check that the labels match the image."
    )


def default_color(class_id: int) -> str:
    """A fixed palette, then evenly spread hues, so class colours are stable between runs."""
    if class_id < len(PALETTE):
        return PALETTE[class_id]
    red, green, blue = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.7, 0.9)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"
