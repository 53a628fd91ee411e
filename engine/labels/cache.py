"""Where rasterised label masks are kept, so a second training on the same data does not rasterise again.

A mask is found again by a key made of the label file's content (every sidecar of a Shapefile
included), the settings that change what is burnt (layer, field, unlabelled, pixel rule) and the
image's grid (size, transform, CRS). Editing the polygons, or training on a resampled image, so
gives a new key, never a stale mask. The cache lives in the app's data folder and may be deleted
at any time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from engine.rasters.read import RasterInfo

CACHE_FORMAT = 2  # 2: masks declare 255 (unlabelled) as nodata
CHUNK_BYTES = 1024 * 1024


def label_cache_dir(home: Path) -> Path:
    """The cache folder inside a data folder from `engine.paths.app_home`."""
    return home / "cache" / "labels"


def label_file_digest(path: Path) -> str:
    """SHA-256 of a label file's bytes; for a ``.shp`` of it and every sidecar (``.dbf``, ``.prj``, …)."""
    path = Path(path)
    parts = sorted(path.parent.glob(f"{path.stem}.*")) if path.suffix.lower() == ".shp" else [path]
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.suffix.lower().encode())
        with part.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
    return digest.hexdigest()


def cached_mask_path(cache_dir: Path, file_digest: str, settings: dict[str, Any], image: RasterInfo) -> Path:
    """Where the mask of ``image`` for these labels and settings is (or will be) kept."""
    key = json.dumps(
        {
            "format": CACHE_FORMAT,
            "labels": file_digest,
            "settings": settings,
            "grid": [image.width, image.height, list(image.transform), image.crs_wkt],
        },
        sort_keys=True,
    )
    folder = hashlib.sha256(key.encode()).hexdigest()[:24]
    return cache_dir / folder / f"{image.path.stem}_mask.tif"


def read_counts(mask: Path) -> dict[int, int] | None:
    """The pixel counts stored beside a cached mask; None when the mask or its counts are missing."""
    counts = mask.with_suffix(".json")
    if not (mask.is_file() and counts.is_file()):
        return None
    try:
        return {int(value): int(count) for value, count in json.loads(counts.read_text()).items()}
    except (ValueError, AttributeError, OSError):
        return None


def write_counts(mask: Path, counts: dict[int, int]) -> None:
    """Stores the pixel counts beside a mask, written last so a complete pair means a complete mask."""
    target = mask.with_suffix(".json")
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps({str(value): count for value, count in counts.items()}))
    staging.replace(target)
