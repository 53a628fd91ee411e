"""Seeded synthetic multispectral scenes with exact labels.

Used by `modelai demo`, the tests and the benchmarks, so that a new user, CI and a benchmark all see
the whole job work without downloading anything. A scene is a georeferenced 5-band uint16 raster
(fields, roads, bright roofs, water, with a nodata border) and its class mask; anomaly scenes add
foreign objects whose spectrum no normal class has.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

CLASS_NAMES = ("field", "road", "building", "water")
CLASS_COLORS = ("#7fbf4d", "#8c8c8c", "#e8402a", "#2a6fe8")
BANDS = 5
NODATA = 0
MASK_NODATA = 255
PIXEL_SIZE = 10.0
CRS_CODE = "EPSG:32618"

# Mean reflectance-like DN per class and band (blue, green, red, red-edge, NIR): realistic offsets
# far from 0 so divide-by-max normalisation would look wrong.
_SIGNATURES = np.array(
    [
        [6200, 7600, 6400, 11800, 17500],  # field
        [9800, 10100, 10400, 10700, 11000],  # road
        [15500, 15200, 14800, 14500, 14200],  # building
        [7800, 7000, 5600, 4800, 4100],  # water
    ],
    dtype=np.float32,
)
_ANOMALY_SIGNATURE = np.array([4200, 15800, 4300, 15900, 5200], dtype=np.float32)


@dataclass(frozen=True)
class Scene:
    """Paths of one generated scene; ``anomaly_mask`` is None for normal scenes."""

    image: Path
    mask: Path
    anomaly_mask: Path | None = None


def class_layout(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Class ids (uint8) of a plausible landscape: field parcels, a lake, roads and roofs."""
    classes = np.zeros((height, width), dtype=np.uint8)
    rows, cols = np.mgrid[0:height, 0:width]
    for _ in range(max(2, (height * width) // 40000)):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        ry, rx = rng.uniform(8, 0.12 * height + 10), rng.uniform(8, 0.12 * width + 10)
        classes[((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1] = 3
    for _ in range(max(2, (height + width) // 160)):
        width_px = int(rng.integers(3, 7))
        if rng.random() < 0.5:
            row = int(rng.integers(0, height))
            classes[max(0, row - width_px // 2) : row + width_px // 2 + 1, :] = 1
        else:
            col = int(rng.integers(0, width))
            classes[:, max(0, col - width_px // 2) : col + width_px // 2 + 1] = 1
    for _ in range(max(4, (height * width) // 3000)):
        h, w = int(rng.integers(5, 16)), int(rng.integers(5, 16))
        r, c = int(rng.integers(0, max(1, height - h))), int(rng.integers(0, max(1, width - w)))
        if (classes[r : r + h, c : c + w] == 0).all():
            classes[r : r + h, c : c + w] = 2
    return classes


def render(classes: np.ndarray, rng: np.random.Generator, anomalies: np.ndarray | None = None) -> np.ndarray:
    """Band values (bands, rows, cols) as uint16 for a class layout, with texture and sensor noise."""
    height, width = classes.shape
    signature = _SIGNATURES[classes].transpose(2, 0, 1)
    if anomalies is not None:
        signature[:, anomalies] = _ANOMALY_SIGNATURE[:, None]
    parcel = rng.normal(1.0, 0.06, size=(1, height // 32 + 1, width // 32 + 1)).astype(np.float32)
    parcel = np.repeat(np.repeat(parcel, 32, axis=1), 32, axis=2)[:, :height, :width]
    noise = rng.normal(0.0, 450.0, size=(BANDS, height, width)).astype(np.float32)
    values = signature * parcel + noise
    return np.clip(values, 1, 65535).astype(np.uint16)


def anomaly_layout(shape: tuple[int, int], rng: np.random.Generator, count: int) -> np.ndarray:
    """A boolean map of ``count`` compact foreign objects (e.g. tarps, spills) of 6-18 pixels."""
    height, width = shape
    mask = np.zeros(shape, dtype=bool)
    for _ in range(count):
        h, w = int(rng.integers(6, 19)), int(rng.integers(6, 19))
        r = int(rng.integers(0, max(1, height - h)))
        c = int(rng.integers(0, max(1, width - w)))
        mask[r : r + h, c : c + w] = True
    return mask


def write_scene(
    folder: Path,
    name: str,
    size: tuple[int, int] = (256, 256),
    seed: int = 0,
    anomalies: int = 0,
    border: int = 6,
    origin: tuple[float, float] = (500000.0, 4500000.0),
) -> Scene:
    """Writes ``images/<name>.tif`` and ``masks/<name>.tif`` (and ``anomalies/<name>.tif``).

    The image has a nodata border of ``border`` pixels (value 0); the mask marks it 255.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    classes = class_layout(height, width, rng)
    foreign = anomaly_layout(size, rng, anomalies) if anomalies else None
    image = render(classes, rng, foreign)
    mask = classes.copy()
    if border:
        for array in (image, mask[None]):
            fill = NODATA if array is image else MASK_NODATA
            array[:, :border, :] = fill
            array[:, -border:, :] = fill
            array[:, :, :border] = fill
            array[:, :, -border:] = fill
    transform = from_origin(origin[0], origin[1], PIXEL_SIZE, PIXEL_SIZE)
    image_path = _write(folder / "images" / f"{name}.tif", image, transform, NODATA)
    mask_path = _write(folder / "masks" / f"{name}.tif", mask[None], transform, MASK_NODATA)
    anomaly_path = None
    if foreign is not None:
        anomaly_path = _write(
            folder / "anomalies" / f"{name}.tif", foreign[None].astype(np.uint8), transform, None
        )
    return Scene(image_path, mask_path, anomaly_path)


def _write(path: Path, data: np.ndarray, transform: rasterio.Affine, nodata: float | None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": CRS.from_string(CRS_CODE),
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    if data.shape[1] < 256 or data.shape[2] < 256:
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {key: value for key, value in profile.items() if value is not None}
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(data)
    return path
