"""Rasters: opening, validating and reading them in windows, normalisation statistics, previews."""
