"""The network that goes into an exported file: our preprocessing contract in, the task's output out.

Deepness feeds a model ``(raw / 255 - mean) / std`` per band and applies nothing after it. A
z-score normalisation ``(raw - offset) / scale`` is exactly that with ``mean = offset / 255`` and
``std = scale / 255``, so it is folded into the metadata and the graph starts at the network. Other
schemes (the percentile one clips) cannot be written as a mean and a std: the metadata then says
mean 0, std 1/255 (the graph receives the raw values) and the normalisation runs inside the graph.
The graph ends in what our own inference blends: softmax probabilities (sigmoid for one class), or
the anomaly model's per-pixel reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from engine.rasters.normalize import Normalization
from engine.training.anomaly import pixel_errors

DEEPNESS_SCALE = 255.0


@dataclass(frozen=True)
class InputContract:
    """The per-band mean and std Deepness applies after dividing by 255, and what the graph still does."""

    mean: list[float]
    std: list[float]
    normalization_in_graph: Normalization | None


def input_contract(normalization: Normalization) -> InputContract:
    """Folds ``normalization`` into Deepness's standardisation where it can, else into the graph."""
    if normalization.method == "standard" and not normalization.clip:
        return InputContract(
            mean=[offset / DEEPNESS_SCALE for offset in normalization.offset],
            std=[scale / DEEPNESS_SCALE for scale in normalization.scale],
            normalization_in_graph=None,
        )
    bands = len(normalization.offset)
    return InputContract([0.0] * bands, [1.0 / DEEPNESS_SCALE] * bands, normalization)


class InGraphNormalization(nn.Module):
    """``(x - offset) / scale``, clipped to [-1, 1] where the normalisation clips, as graph operators."""

    def __init__(self, normalization: Normalization) -> None:
        super().__init__()
        shape = (1, -1, 1, 1)
        self.register_buffer("offset", torch.tensor(normalization.offset, dtype=torch.float32).view(shape))
        self.register_buffer("scale", torch.tensor(normalization.scale, dtype=torch.float32).view(shape))
        self.clip = normalization.clip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        normalised = (images - self.offset) / self.scale
        return normalised.clamp(-1.0, 1.0) if self.clip else normalised


class TaskGraph(nn.Module):
    """The normalisation (or nothing), the network, and a task's output computed in ``forward``."""

    def __init__(self, network: nn.Module, normalization: nn.Module) -> None:
        super().__init__()
        self.normalization = normalization
        self.network = network


class SegmentationGraph(TaskGraph):
    """Per-pixel class probabilities ``(N, classes, H, W)``: softmax, or sigmoid for a single class."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        logits = self.network(self.normalization(images))
        return torch.sigmoid(logits) if logits.shape[1] == 1 else torch.softmax(logits, dim=1)


class ReconstructionErrorGraph(TaskGraph):
    """The anomaly score ``(N, 1, H, W)``, the same squared error over bands that set the threshold."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        inputs = self.normalization(images)
        return pixel_errors(self.network(inputs), inputs).unsqueeze(1)


def export_graph(task: str, network: nn.Module, contract: InputContract) -> nn.Module:
    """The eval-mode module to trace for ``task``, taking the input Deepness prepares."""
    normalization: nn.Module = nn.Identity()
    if contract.normalization_in_graph is not None:
        normalization = InGraphNormalization(contract.normalization_in_graph)
    graph_type = SegmentationGraph if task == "segmentation" else ReconstructionErrorGraph
    return graph_type(network, normalization).eval()
