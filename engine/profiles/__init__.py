"""What a model knows about the rasters it was trained on, and the checks a new raster must pass.

A model trained on 10 m RGBN imagery gives confident nonsense on 0.5 m BGRN imagery; band count and
dtype alone do not catch it. The profile stored with a model (band names, wavelengths, ground pixel
size, CRS) does.
"""
