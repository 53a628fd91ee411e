"""Vectorising: class maps and anomaly masks written back as polygons (GeoPackage, styled for QGIS)."""
