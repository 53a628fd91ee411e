"""A quick look at rasterised labels over their image, to check that the polygons landed right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from engine.inference.outputs import hex_to_rgb
from engine.rasters.preview import read_preview, render_rgba
from engine.rasters.read import read_info
from engine.training.segmentation import default_color

OVERLAY_OPACITY = 0.55
PREVIEW_SIDE = 360


def label_overlay(
    image: Path, mask: Path, unpainted: tuple[int, ...] = (0, 255), max_side: int = PREVIEW_SIDE
) -> np.ndarray:
    """RGBA uint8 (rows, cols, 4): the image (first three bands, or the first) with every class of
    the mask painted over it in its default colour, except the ``unpainted`` values (background and
    unlabelled by default)."""
    info = read_info(image)
    bands = [1, 2, 3] if info.count >= 3 else [1]
    preview = read_preview(info, bands, max_side)
    rgba = render_rgba(preview, bands)
    rgba[..., 3] = 255
    with rasterio.open(mask) as dataset:
        classes = dataset.read(1, out_shape=preview.shape, resampling=Resampling.nearest)
    for class_id in np.unique(classes):
        if class_id in unpainted:
            continue
        where = classes == class_id
        color = np.array(hex_to_rgb(default_color(int(class_id))), dtype=np.float32)
        blended = rgba[where, :3] * (1 - OVERLAY_OPACITY) + color * OVERLAY_OPACITY
        rgba[where, :3] = blended.astype(np.uint8)
    return rgba
