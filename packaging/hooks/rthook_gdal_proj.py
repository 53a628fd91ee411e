"""PyInstaller runtime hook: make GDAL and PROJ use the data bundled with the app, whatever the machine says.

It runs before the app's code, so rasterio reads these variables when it is first imported. The data
must match the bundled libraries: a PROJ_LIB or PROJ_DATA left by QGIS or OSGeo4W points at another
PROJ's proj.db ("Cannot find proj.db" or a database layout error), and rasterio prefers those
variables to its own data. PROJ_NETWORK=OFF keeps PROJ from downloading grids: the app is offline.
"""

import os
import sys
from pathlib import Path


def _pin_gdal_proj_data() -> None:
    bundled = Path(sys._MEIPASS) / "rasterio"
    os.environ["GDAL_DATA"] = str(bundled / "gdal_data")
    os.environ["PROJ_DATA"] = str(bundled / "proj_data")
    os.environ.pop("PROJ_LIB", None)
    os.environ["PROJ_NETWORK"] = "OFF"


_pin_gdal_proj_data()
del _pin_gdal_proj_data
