"""Where raster pixels come from besides plain GeoTIFF files: GDAL virtual paths, VRT mosaics and
stacks, and resampled views of a raster on another grid."""
