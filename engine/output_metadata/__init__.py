"""What travels inside and beside an output raster for GIS software: provenance tags, band
statistics and QGIS styles, so `gdalinfo` and QGIS show where a map came from and how to read it."""
