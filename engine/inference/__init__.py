"""Tiled inference: the tile grid, reading and running tiles, task heads, pre-run checks, outputs."""
