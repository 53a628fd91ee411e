"""Test-time augmentation: the averaged map does not depend on how the tile was turned or flipped."""

from __future__ import annotations

import numpy as np
import torch

from engine.inference.forward import TileForward
from engine.inference.heads import class_probabilities
from engine.models import build_model
from engine.progress import NullReporter


def forward(tta: bool) -> TileForward:
    torch.manual_seed(0)
    model = build_model("unet", {"in_channels": 3, "num_classes": 3, "base_width": 4, "depth": 2}).eval()
    return TileForward(model, torch.device("cpu"), None, 4, class_probabilities, NullReporter(), tta)


def test_tta_map_is_the_same_for_a_turned_and_flipped_tile() -> None:
    tile = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    turned = np.ascontiguousarray(np.flip(np.rot90(tile, 1, axes=(-2, -1)), -1))
    plain, averaged = forward(tta=False), forward(tta=True)

    def back(values: np.ndarray) -> np.ndarray:
        return np.rot90(np.flip(values, -1), -1, axes=(-2, -1))

    assert np.abs(back(plain(turned)) - plain(tile)).max() > 1e-3
    np.testing.assert_allclose(back(averaged(turned)), averaged(tile), atol=1e-5)
    np.testing.assert_allclose(averaged(tile).sum(axis=1), 1.0, atol=1e-5)
