"""Measuring on the ground: true areas of pixels, whatever the raster's CRS."""
