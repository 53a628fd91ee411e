"""Labels: masks, polygons rasterised onto an image's grid, painted label tiles."""
