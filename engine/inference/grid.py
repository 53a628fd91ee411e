"""The grid of overlapping tiles that covers a raster, and the weights that blend them without seams.

A network sees a tile, not the raster: pixels near a tile's border lack context and come out worse
than pixels in its middle. Like TorchGeo's ``GridGeoSampler(size, stride)``, the grid overlaps the
tiles so that every pixel is also seen away from a border, and the overlap should cover the part of
the network's receptive field that matters (a few dozen pixels for a U-Net of depth 4). Unlike plain
averaging, the blending weights fall smoothly (a Hann/cosine ramp) across the overlap, so a tile's
weak border pixels count for little and no step appears where one tile ends.

Contract of `TileGrid`:

* ``tile`` is the largest tile side. Along each axis the tile shrinks (to a multiple of the
  network's ``size_multiple``) to the smallest size that still needs no more tiles, so a 2000-pixel
  raster gets five 464-pixel tiles rather than five 512-pixel ones that overlap by up to 400 pixels:
  a fifth less computation for the same overlap.
* Tiles lie inside the raster: the first starts at 0, the next ones every ``tile - overlap`` pixels,
  and the last one is aligned with the raster's end, so a raster whose size is not a multiple of the
  tile needs no padding.
* Along an axis shorter than the tile, the single tile is the raster rounded up to the network's
  ``size_multiple``; `pad_to_tile` fills the rest by reflection, never with zeros that the network
  would read as a dark edge.
* Weights are positive at every raster pixel of a tile (the ramp never reaches 0, and the side of a
  tile that touches the raster's edge is not tapered at all), zero on padding, and normalised so the
  weights of all tiles covering a pixel sum to exactly 1. Weights are separable (a row ramp times a
  column ramp), so the normalisation is exact per axis and costs nothing per tile.
* ``weight_mode="flat"`` gives uniform weights (plain averaging in the overlap), kept as the reference
  the tests and the benchmark compare against.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

WEIGHT_MODES = ("hann", "flat")


@dataclass(frozen=True)
class Tile:
    """One window of the grid: its strip and column indices and the raster pixels it covers."""

    strip: int
    column: int
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        """The raster rows the tile covers."""
        return slice(self.row_off, self.row_off + self.height)

    @property
    def cols(self) -> slice:
        """The raster columns the tile covers."""
        return slice(self.col_off, self.col_off + self.width)


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``value``."""
    return -(-value // multiple) * multiple


def fitted_tile(length: int, tile: int, overlap: int, multiple: int) -> int:
    """The smallest tile side (a multiple of ``multiple``, at most ``tile``) that covers ``length``
    with as few tiles as ``tile`` itself would need."""
    if length <= tile:
        return round_up(length, multiple)
    count = -(-(length - overlap) // (tile - overlap))
    return min(tile, round_up(-(-(length - overlap) // count) + overlap, multiple))


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets along one axis: every ``tile - overlap``, the last one flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    count = -(-(length - tile) // stride) + 1
    return [min(index * stride, length - tile) for index in range(count)]


def blend_ramp(length: int, overlap: int, taper_start: bool, taper_end: bool, mode: str) -> np.ndarray:
    """Un-normalised 1-D weights of one tile: 1 inside, a sin² ramp over ``overlap`` at tapered ends.

    The ramp samples sin² at pixel centres, so it is strictly between 0 and 1 and a falling ramp plus
    the next tile's rising ramp over the same ``overlap`` pixels sum to 1 before any normalisation.
    """
    weights = np.ones(length, dtype=np.float64)
    if mode == "flat" or overlap == 0:
        return weights
    ramp = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
    span = min(overlap, length)
    if taper_start:
        weights[:span] *= ramp[:span]
    if taper_end:
        weights[length - span :] *= ramp[:span][::-1]
    return weights


def _normalised_axis_weights(
    length: int, tile: int, starts: list[int], overlap: int, mode: str
) -> list[np.ndarray]:
    """Per-tile 1-D weights along an axis, divided by their sum at each pixel (so they sum to 1)."""
    inside = min(tile, length)
    raw = [
        blend_ramp(inside, overlap, taper_start=index > 0, taper_end=index < len(starts) - 1, mode=mode)
        for index in range(len(starts))
    ]
    total = np.zeros(length, dtype=np.float64)
    for start, weights in zip(starts, raw, strict=True):
        total[start : start + inside] += weights
    normalised = []
    for start, weights in zip(starts, raw, strict=True):
        padded = np.zeros(tile, dtype=np.float32)
        padded[:inside] = weights / total[start : start + inside]
        normalised.append(padded)
    return normalised


class TileGrid:
    """Overlapping tiles over a ``height`` x ``width`` raster, walked strip by strip (rows of tiles).

    Args:
        height: raster rows.
        width: raster columns.
        tile: largest tile side in pixels; must be a multiple of ``size_multiple``.
        overlap: pixels shared by neighbouring tiles, at most half the tile. It should cover the
            context the network needs, or predictions near tile borders differ from their neighbours.
        size_multiple: the network needs tile sides that are multiples of this (``2**depth``).
        weight_mode: ``"hann"`` (smooth ramps, no seams) or ``"flat"`` (plain averaging).

    Raises:
        ValueError: a size or overlap that no grid can satisfy; the message names the fix.
    """

    def __init__(
        self,
        height: int,
        width: int,
        tile: int,
        overlap: int,
        size_multiple: int = 1,
        weight_mode: str = "hann",
    ) -> None:
        if height < 1 or width < 1:
            raise ValueError(f"A raster of {width}×{height} pixels has nothing to tile.")
        if weight_mode not in WEIGHT_MODES:
            raise ValueError(f"Unknown weight mode {weight_mode!r}; choose one of {', '.join(WEIGHT_MODES)}.")
        if tile < size_multiple or tile % size_multiple:
            raise ValueError(
                f"Tile size {tile} must be a positive multiple of {size_multiple}, which this network needs; "
                f"use {round_up(max(tile, 1), size_multiple)}."
            )
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f"Overlap {overlap} must be between 0 and half the tile size ({tile // 2}).")
        self.height = height
        self.width = width
        self.overlap = overlap
        self.weight_mode = weight_mode
        self.tile_height = fitted_tile(height, tile, overlap, size_multiple)
        self.tile_width = fitted_tile(width, tile, overlap, size_multiple)
        self.row_starts = tile_starts(height, self.tile_height, overlap)
        self.col_starts = tile_starts(width, self.tile_width, overlap)
        self._row_weights = _normalised_axis_weights(
            height, self.tile_height, self.row_starts, overlap, weight_mode
        )
        self._col_weights = _normalised_axis_weights(
            width, self.tile_width, self.col_starts, overlap, weight_mode
        )

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def strip_rows(self) -> int:
        """Raster rows one strip covers (the tile height, or the whole raster when it is shorter)."""
        return min(self.tile_height, self.height)

    def strip(self, index: int) -> list[Tile]:
        """The tiles of one strip, left to right."""
        row = self.row_starts[index]
        height = min(self.tile_height, self.height - row)
        return [
            Tile(index, column, row, col, height, min(self.tile_width, self.width - col))
            for column, col in enumerate(self.col_starts)
        ]

    def strips(self) -> Iterator[list[Tile]]:
        """Every strip, top to bottom."""
        for index in range(len(self.row_starts)):
            yield self.strip(index)

    def finished_rows(self, index: int) -> tuple[int, int]:
        """Rows ``[start, stop)`` that no later strip touches once strip ``index`` is blended in."""
        start = self.row_starts[index]
        last = index == len(self.row_starts) - 1
        return start, self.height if last else self.row_starts[index + 1]

    def weights(self, tile: Tile) -> np.ndarray:
        """Normalised float32 weights of a tile, ``(tile_height, tile_width)``, zero on padding."""
        return np.outer(self._row_weights[tile.strip], self._col_weights[tile.column])


class StripBlender:
    """Blends weighted tile outputs into one strip of rows and releases the rows that are finished.

    Only one strip (``grid.strip_rows`` x width) of values and validity is held, so memory grows
    with the raster's width, never its area. Tiles must come in strip order; before the first tile
    of the next strip is added (and after the last tile), `finish_strip` hands over the rows that no
    later tile touches, in chunks of at most ``chunk_rows`` rows so that consumers of them keep
    their temporaries small, and moves the overlap rows up.
    """

    def __init__(self, grid: TileGrid, channels: int, chunk_rows: int = 64) -> None:
        self.grid = grid
        self.strip = 0
        self.chunk_rows = chunk_rows
        self._values = np.zeros((channels, grid.strip_rows, grid.width), dtype=np.float32)
        self._valid = np.zeros((grid.strip_rows, grid.width), dtype=bool)

    def add(self, tile: Tile, values: np.ndarray | None, valid: np.ndarray) -> None:
        """Adds a tile's ``(channels, tile_height, tile_width)`` outputs (None if all nodata)."""
        if tile.strip != self.strip:
            raise ValueError(f"tile of strip {tile.strip} added while strip {self.strip} is open")
        self._valid[:, tile.cols] = valid
        if values is not None:
            weights = self.grid.weights(tile)[: tile.height, : tile.width]
            self._values[:, :, tile.cols] += values[:, : tile.height, : tile.width] * weights

    def finish_strip(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Yields ``(row_off, values, valid)`` chunks of the finished rows, then opens the next strip.

        The arrays are views, valid until the next chunk is requested.
        """
        start, stop = self.grid.finished_rows(self.strip)
        finished = stop - start
        for row in range(0, finished, self.chunk_rows):
            rows = slice(row, min(row + self.chunk_rows, finished))
            yield start + row, self._values[:, rows], self._valid[rows]
        kept = self.grid.strip_rows - finished
        self._values[:, :kept] = self._values[:, finished:]
        self._values[:, kept:] = 0.0
        self.strip += 1


def pad_to_tile(block: np.ndarray, tile_height: int, tile_width: int) -> np.ndarray:
    """Reflect-pads ``(..., rows, cols)`` at the bottom and right up to the tile shape.

    Reflection keeps the texture of the edge, so the network sees plausible context rather than a
    dark border. numpy repeats the reflection when the padding is wider than the block, and a single
    row or column is simply repeated.
    """
    rows, cols = block.shape[-2:]
    if rows == tile_height and cols == tile_width:
        return block
    pad = [(0, 0)] * (block.ndim - 2) + [(0, tile_height - rows), (0, tile_width - cols)]
    return np.pad(block, pad, mode="reflect")
