"""Painted labels held as tiles of class ids, with an undo history of strokes.

A 20000 x 20000 raster has 400 million label pixels; people scribble on a few thousand of them. The
labels are therefore square tiles created on first touch, and every untouched pixel reads as
`UNLABELLED` (255, the training ignore index) without being stored. A stroke records the tiles it
changed (before and after), so undo and redo swap whole tiles back and forth, and the history costs
memory only where someone painted.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from rasterio.features import rasterize

from engine.datasets import IGNORE_INDEX

UNLABELLED = IGNORE_INDEX
TILE = 256
HISTORY_STEPS = 100

TileKey = tuple[int, int]


@dataclass
class Stroke:
    """One undoable edit: each touched tile's content before and after it (None: tile did not exist)."""

    before: dict[TileKey, np.ndarray | None] = field(default_factory=dict)
    after: dict[TileKey, np.ndarray | None] = field(default_factory=dict)


class LabelTiles:
    """Class ids (uint8, `UNLABELLED` where nothing is painted) of a ``height`` x ``width`` grid.

    Edits happen inside a stroke (`begin_stroke` ... `end_stroke`); `undo` and `redo` step through
    the last `HISTORY_STEPS` strokes. ``version`` grows with every change, so a saver can tell
    whether what it wrote is still current.
    """

    def __init__(self, height: int, width: int, tile: int = TILE) -> None:
        self.height = height
        self.width = width
        self.tile = tile
        self.version = 0
        self._tiles: dict[TileKey, np.ndarray] = {}
        self._undo: list[Stroke] = []
        self._redo: list[Stroke] = []
        self._stroke: Stroke | None = None

    @property
    def tile_count(self) -> int:
        """How many tiles are held in memory (the touched ones)."""
        return len(self._tiles)

    def tiles(self) -> Iterator[tuple[TileKey, np.ndarray]]:
        """Every held tile as ((tile row, tile column), array); edge tiles are cut to the grid."""
        yield from self._tiles.items()

    def tile_window(self, key: TileKey) -> tuple[int, int, int, int]:
        """Row, column, height and width of a tile in grid pixels."""
        row, col = key[0] * self.tile, key[1] * self.tile
        return row, col, min(self.tile, self.height - row), min(self.tile, self.width - col)

    def copy(self) -> LabelTiles:
        """The labels alone (no history): a snapshot a saver or a training job can use off this thread."""
        snapshot = LabelTiles(self.height, self.width, self.tile)
        snapshot._tiles = {key: values.copy() for key, values in self._tiles.items()}
        snapshot.version = self.version
        return snapshot

    def set_tile(self, key: TileKey, values: np.ndarray) -> None:
        """Loads a tile (from a saved mask) without touching the history; all-unlabelled tiles are dropped."""
        if np.all(values == UNLABELLED):
            self._tiles.pop(key, None)
        else:
            self._tiles[key] = values.astype(np.uint8, copy=True)
        self.version += 1

    def read(self, row: int, col: int, height: int, width: int, step: int = 1) -> np.ndarray:
        """Class ids of a window (clipped to the grid), every ``step``-th pixel in each direction."""
        out_rows = -(-height // step)
        out_cols = -(-width // step)
        out = np.full((out_rows, out_cols), UNLABELLED, dtype=np.uint8)
        for key, values in self._tiles.items():
            tile_row, tile_col, tile_height, tile_width = self.tile_window(key)
            top, left = max(row, tile_row), max(col, tile_col)
            bottom = min(row + height, tile_row + tile_height)
            right = min(col + width, tile_col + tile_width)
            if top >= bottom or left >= right:
                continue
            # The first sampled grid row/column at or after ``top``/``left`` on the step lattice.
            first_row = row + -(-(top - row) // step) * step
            first_col = col + -(-(left - col) // step) * step
            if first_row >= bottom or first_col >= right:
                continue
            part = values[
                first_row - tile_row : bottom - tile_row : step,
                first_col - tile_col : right - tile_col : step,
            ]
            out_row, out_col = (first_row - row) // step, (first_col - col) // step
            out[out_row : out_row + part.shape[0], out_col : out_col + part.shape[1]] = part
        return out

    def class_pixels(self) -> dict[int, int]:
        """Labelled pixels per class id, over the whole grid."""
        counts: dict[int, int] = {}
        for values in self._tiles.values():
            ids, numbers = np.unique(values[values != UNLABELLED], return_counts=True)
            for class_id, number in zip(ids.tolist(), numbers.tolist(), strict=True):
                counts[class_id] = counts.get(class_id, 0) + number
        return counts

    def labelled_bounds(self) -> tuple[int, int, int, int] | None:
        """Row, column, height and width of the smallest window holding every labelled pixel."""
        boxes = []
        for key, values in self._tiles.items():
            rows = np.flatnonzero((values != UNLABELLED).any(axis=1))
            cols = np.flatnonzero((values != UNLABELLED).any(axis=0))
            if rows.size:
                tile_row, tile_col, _, _ = self.tile_window(key)
                boxes.append(
                    (tile_row + rows[0], tile_col + cols[0], tile_row + rows[-1], tile_col + cols[-1])
                )
        if not boxes:
            return None
        top, left = min(b[0] for b in boxes), min(b[1] for b in boxes)
        bottom, right = max(b[2] for b in boxes), max(b[3] for b in boxes)
        return int(top), int(left), int(bottom - top + 1), int(right - left + 1)

    def begin_stroke(self) -> None:
        """Starts an undoable edit (a brush drag, a polygon, an eraser drag)."""
        self.end_stroke()
        self._stroke = Stroke()

    def end_stroke(self) -> bool:
        """Closes the current edit; True when it changed something (and is now undoable)."""
        stroke, self._stroke = self._stroke, None
        if stroke is None or not stroke.before:
            return False
        stroke.after = {key: self._copy(key) for key in stroke.before}
        self._undo.append(stroke)
        del self._undo[:-HISTORY_STEPS]
        self._redo.clear()
        return True

    def paint_disk(self, row: float, col: float, radius: float, value: int) -> None:
        """Sets every pixel whose centre lies within ``radius`` of (row, col) to ``value``."""
        top, left = int(np.floor(row - radius)), int(np.floor(col - radius))
        size = int(np.ceil(2 * radius)) + 2
        rows = np.arange(top, top + size)[:, None] + 0.5
        cols = np.arange(left, left + size)[None, :] + 0.5
        inside = (rows - row) ** 2 + (cols - col) ** 2 <= max(radius, 0.5) ** 2
        self._apply(top, left, inside, value)

    def paint_line(
        self, start: tuple[float, float], end: tuple[float, float], radius: float, value: int
    ) -> None:
        """A brush dragged from ``start`` to ``end`` (row, col): disks close enough to leave no gap."""
        distance = float(np.hypot(end[0] - start[0], end[1] - start[1]))
        steps = max(1, int(np.ceil(distance / max(radius / 2, 0.5))))
        for fraction in np.linspace(0.0, 1.0, steps + 1):
            self.paint_disk(
                start[0] + (end[0] - start[0]) * fraction,
                start[1] + (end[1] - start[1]) * fraction,
                radius,
                value,
            )

    def paint_polygon(self, vertices: Sequence[tuple[float, float]], value: int) -> None:
        """Fills a polygon of (row, col) vertices (pixel centres inside it, and every pixel it touches)."""
        if len(vertices) < 3:
            return
        rows = [vertex[0] for vertex in vertices]
        cols = [vertex[1] for vertex in vertices]
        top, left = int(np.floor(min(rows))), int(np.floor(min(cols)))
        height, width = int(np.ceil(max(rows))) - top + 1, int(np.ceil(max(cols))) - left + 1
        ring = [(col - left, row - top) for row, col in vertices]
        polygon = {"type": "Polygon", "coordinates": [[*ring, ring[0]]]}
        inside = rasterize(
            [(polygon, 1)], out_shape=(height, width), fill=0, dtype="uint8", all_touched=False
        )
        self._apply(top, left, inside.astype(bool), value)

    def paste(self, other: LabelTiles) -> None:
        """Writes every labelled pixel of ``other`` (labels of the same grid and tiles) over these, as
        part of the current stroke; ``other``'s unlabelled pixels leave these labels as they are.

        Whole tiles are merged in one pass each, so an import of thousands of tiles stays quick on
        the GUI thread.
        """
        assert (other.height, other.width, other.tile) == (self.height, self.width, self.tile), "another grid"
        for key, values in other.tiles():
            labelled = values != UNLABELLED
            if self._stroke is not None and key not in self._stroke.before:
                self._stroke.before[key] = self._copy(key)
            current = self._tiles.get(key)
            self._tiles[key] = values.copy() if current is None else np.where(labelled, values, current)
        self.version += 1

    def delete_class(self, class_id: int) -> None:
        """Makes a class's pixels unlabelled and moves every later class id down by one.

        The history is cleared: undoing a stroke from before would bring back old ids.
        """
        lookup = np.arange(256, dtype=np.uint8)
        lookup[class_id] = UNLABELLED
        lookup[class_id + 1 : UNLABELLED] = np.arange(class_id, UNLABELLED - 1, dtype=np.uint8)
        for key in list(self._tiles):
            self.set_tile(key, lookup[self._tiles[key]])
        self._undo.clear()
        self._redo.clear()

    def can_undo(self) -> bool:
        return bool(self._undo)

    def can_redo(self) -> bool:
        return bool(self._redo)

    def undo(self) -> bool:
        """Reverts the last stroke; False when there is nothing to undo."""
        self.end_stroke()
        if not self._undo:
            return False
        stroke = self._undo.pop()
        self._restore(stroke.before)
        self._redo.append(stroke)
        return True

    def redo(self) -> bool:
        """Applies the last undone stroke again; False when there is nothing to redo."""
        if not self._redo:
            return False
        stroke = self._redo.pop()
        self._restore(stroke.after)
        self._undo.append(stroke)
        return True

    def _restore(self, contents: dict[TileKey, np.ndarray | None]) -> None:
        for key, values in contents.items():
            if values is None:
                self._tiles.pop(key, None)
            else:
                self._tiles[key] = values.copy()
        self.version += 1

    def _copy(self, key: TileKey) -> np.ndarray | None:
        values = self._tiles.get(key)
        return None if values is None else values.copy()

    def _apply(self, top: int, left: int, inside: np.ndarray, value: int) -> None:
        """Writes ``value`` where ``inside`` (a boolean patch placed at top, left) is True, tile by tile."""
        bottom = min(top + inside.shape[0], self.height)
        right = min(left + inside.shape[1], self.width)
        first_row, first_col = max(top, 0), max(left, 0)
        if first_row >= bottom or first_col >= right:
            return
        for tile_row in range(first_row // self.tile, (bottom - 1) // self.tile + 1):
            for tile_col in range(first_col // self.tile, (right - 1) // self.tile + 1):
                self._apply_to_tile((tile_row, tile_col), top, left, inside, bottom, right, value)

    def _apply_to_tile(
        self, key: TileKey, top: int, left: int, inside: np.ndarray, bottom: int, right: int, value: int
    ) -> None:
        row0, col0, tile_height, tile_width = self.tile_window(key)
        r0, r1 = max(top, row0), min(bottom, row0 + tile_height)
        c0, c1 = max(left, col0), min(right, col0 + tile_width)
        if r0 >= r1 or c0 >= c1:
            return
        patch = inside[r0 - top : r1 - top, c0 - left : c1 - left]
        if not patch.any():
            return
        values = self._tiles.get(key)
        if values is None and value == UNLABELLED:
            return
        if self._stroke is not None and key not in self._stroke.before:
            self._stroke.before[key] = self._copy(key)
        if values is None:
            values = np.full((tile_height, tile_width), UNLABELLED, dtype=np.uint8)
            self._tiles[key] = values
        values[r0 - row0 : r1 - row0, c0 - col0 : c1 - col0][patch] = value
        if value == UNLABELLED and np.all(values == UNLABELLED):
            del self._tiles[key]
        self.version += 1
