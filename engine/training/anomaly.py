"""Anomaly detection: a convolutional autoencoder trained on normal images only.

A pixel's anomaly score is its reconstruction error, the mean squared error over bands. The
threshold that flags a pixel is calibrated on held-out normal pixels (the validation part): at the
0.99 quantile, about 1 % of normal pixels are flagged, whatever the sensor's units. The error
statistics go into the model file, so a map of scores can be read against them later.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from engine.models.metadata import ClassInfo
from engine.training.config import TrainConfig
from engine.training.previews import rgb_previews

MAX_CALIBRATION_PIXELS = 1_000_000


def pixel_errors(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Per-pixel anomaly score (N, H, W): squared error averaged over bands."""
    return (reconstruction - images).square().mean(dim=1)


def masked_mse_loss(reconstruction: torch.Tensor, images: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel error over valid pixels only; 0 for a batch without valid pixels."""
    errors = pixel_errors(reconstruction, images) * valid
    return errors.sum() / valid.sum().clamp(min=1)


class AnomalyValidator:
    """Streams error sums and keeps a bounded random sample of errors for the quantiles."""

    def __init__(self, quantile: float) -> None:
        self.quantile = quantile
        self.total = 0.0
        self.total_squares = 0.0
        self.count = 0
        self.samples: list[np.ndarray] = []
        self.sampled = 0
        self.rng = np.random.default_rng(0)

    def update(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        errors = pixel_errors(output, batch["image"])[batch["valid"]].double().cpu().numpy()
        self.total += float(errors.sum())
        self.total_squares += float(np.square(errors).sum())
        self.count += errors.size
        self.samples.append(errors)
        self.sampled += errors.size
        if self.sampled > 2 * MAX_CALIBRATION_PIXELS:
            merged = np.concatenate(self.samples)
            self.samples = [self.rng.choice(merged, MAX_CALIBRATION_PIXELS, replace=False)]
            self.sampled = MAX_CALIBRATION_PIXELS

    def result(self) -> tuple[dict[str, float], dict[str, Any]]:
        assert self.count, "result() needs at least one update() with valid pixels"
        errors = np.concatenate(self.samples)
        mean = self.total / self.count
        std = float(np.sqrt(max(0.0, self.total_squares / self.count - mean * mean)))
        threshold, p50, p99 = (float(v) for v in np.quantile(errors, [self.quantile, 0.5, 0.99]))
        calibration = {
            "threshold": threshold,
            "quantile": self.quantile,
            "error_mean": mean,
            "error_std": std,
            "error_p50": p50,
            "error_p99": p99,
            "pixels": self.count,
        }
        return {"reconstruction_error": mean, "threshold": threshold}, {"calibration": calibration}


@dataclass
class AnomalyTask:
    """The anomaly side of the training loop (see `engine.training.contract.TrainingTask`)."""

    quantile: float
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    classes: list[ClassInfo] = field(default_factory=list)
    architecture: ClassVar[str] = "conv_autoencoder"
    monitor: ClassVar[str] = "reconstruction_error"
    higher_is_better: ClassVar[bool] = False

    def loss(self, output: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return masked_mse_loss(output, batch["image"], batch["valid"])

    def validator(self) -> AnomalyValidator:
        return AnomalyValidator(self.quantile)

    def sample(
        self, output: torch.Tensor, batch: dict[str, torch.Tensor], index: int
    ) -> dict[str, np.ndarray]:
        """RGB of the patch and of its reconstruction (same stretch), and the error map (float32)."""
        valid = batch["valid"][index]
        image, reconstruction = rgb_previews(valid, batch["image"][index], output[index])
        errors = pixel_errors(output[index : index + 1], batch["image"][index : index + 1])[0] * valid
        return {
            "image": image,
            "reconstruction": reconstruction,
            "prediction": errors.float().cpu().numpy(),
        }

    def anomaly_section(self, best_entry: dict[str, Any] | None) -> dict[str, Any] | None:
        """The threshold and error statistics of the epoch whose weights the model keeps."""
        return None if best_entry is None else dict(best_entry["calibration"])


def make_anomaly_task(config: TrainConfig, in_channels: int) -> AnomalyTask:
    """An autoencoder over ``in_channels`` bands with the configured width, depth and latent size."""
    hyperparameters = {
        "in_channels": in_channels,
        "base_width": config.network_width,
        "depth": config.network_depth,
        "latent_channels": config.latent_channels,
    }
    return AnomalyTask(config.threshold_quantile, hyperparameters)
