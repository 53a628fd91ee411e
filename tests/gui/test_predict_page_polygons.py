"""The Predict page's polygons option: a styled GeoPackage beside the rasters, its outlines on the preview."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.engine.label_files import read_polygons
from tests.gui.test_predict_page import load, model, prepare, scene  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui


def test_polygons_are_written_and_outlined_over_the_preview(window, qtbot, run, until, model, scene):  # noqa: F811
    page = window.predict_page
    window.show()
    window.show_page("Predict")
    assert not page.options.min_area.isEnabled()
    page.options.polygons.setChecked(True)
    page.options.min_area.setValue(500.0)
    options = page.options.options()
    assert (options.polygons, options.min_area, options.simplify) == (True, 500.0, 0.0)

    async def scenario() -> None:
        await load(window, model, scene)
        page.rasters.select([scene])
        prepare(page)
        qtbot.mouseClick(page.run_button, Qt.MouseButton.LeftButton)
        await until(lambda: not page.legend.isHidden(), "the result's legend", timeout=30)

    run(scenario())
    gpkg = page.last_output_dir / "field_classes.gpkg"
    regions, fields, _ = read_polygons(gpkg)
    assert len(regions) > 0 and (fields["area_m2"] >= 500).all()
    overlay = page.view.overlay_item.image
    white = np.all(overlay == (255, 255, 255, 255), axis=-1)
    assert 0 < white.mean() < 0.5, "the region outlines are drawn, not the whole map"
    page.grab().save(str(page.last_output_dir / "predict-page-polygons.png"))
