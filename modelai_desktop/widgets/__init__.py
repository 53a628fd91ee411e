"""Reusable widgets shared by the pages: raster view, raster list, display controls, banner."""
