"""Small RGB previews of patches for the live training view."""

from __future__ import annotations

import numpy as np
import torch


def rgb_previews(valid: torch.Tensor, *images: torch.Tensor) -> list[np.ndarray]:
    """HxWx3 uint8 views of (bands, H, W) images: the first three bands (fewer bands are repeated).

    All images share the 2-98 % stretch of the first one's valid pixels, so an input and its
    reconstruction are comparable at a glance.
    """
    arrays = [image.detach().float().cpu().numpy() for image in images]
    arrays = [a[np.minimum(np.arange(3), a.shape[0] - 1)] for a in arrays]
    mask = valid.cpu().numpy().astype(bool)
    pixels = arrays[0][:, mask] if mask.any() else arrays[0].reshape(3, -1)
    low, high = np.percentile(pixels, (2, 98), axis=1)
    scale = np.where(high > low, high - low, 1.0)[:, None, None]
    previews = []
    for array in arrays:
        stretched = np.clip((array - low[:, None, None]) / scale, 0, 1) * 255
        stretched[:, ~mask] = 0
        previews.append(np.ascontiguousarray(stretched.round().astype(np.uint8).transpose(1, 2, 0)))
    return previews
