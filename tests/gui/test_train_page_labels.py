"""The Train page with a polygon file instead of masks: field picker, preview, pixels per class, training."""

from __future__ import annotations

from pathlib import Path

import pytest
import shapely

from engine.models.file import read_metadata
from tests.engine.label_files import reprojected_copy, write_labels
from tests.gui.test_train_page import home, page, scenes, use_tiny_settings  # noqa: F401 (fixtures)

pytestmark = pytest.mark.gui
TRAINING_TIMEOUT_S = 20.0


@pytest.fixture
def labels(tmp_path: Path) -> Path:
    """A road and a pond on the synthetic scenes (10 m pixels from (500000, 4500000)), in lon/lat."""
    road = shapely.box(500100, 4499000, 500400, 4499900)
    pond = shapely.box(500700, 4499100, 501100, 4499500)
    utm = write_labels(tmp_path / "utm.geojson", [road, pond], "EPSG:32618", {"kind": ["road", "water"]})
    return reprojected_copy(utm, tmp_path / "survey.gpkg", "EPSG:4326", keep=("kind",))


def test_a_polygon_file_trains_with_the_chosen_field(page, scenes, labels, home, run, until):  # noqa: F811
    saved: list[Path] = []
    page.model_saved.connect(saved.append)
    page.set_data("segmentation", [scenes / "images"], [labels])
    run(page.check_data())
    options = page.label_options
    assert not options.isHidden() and "survey.gpkg: layer survey, 2 features" in options.summary.text()
    assert options.field.itemText(1) == "kind (text)"
    options.field.setCurrentIndex(1)
    report = run(page.check_data())
    assert report.usable
    rows = page.pairing_table.rows()
    assert [row.image.name for row in rows] == ["scene0.tif", "scene1.tif"]
    assert "road" in rows[0].labels and "water" in rows[0].labels and "background" in rows[0].labels
    assert page.pairing_table.item(0, 1).text() == rows[0].labels
    assert not options.preview.pixmap().isNull()
    page.grab().save(str(home / "train-page-labels.png"))
    config = page._config()
    assert (config.labels, config.label_field, config.masks) == (labels, "kind", None)

    use_tiny_settings(page, epochs=1)

    async def scenario():
        await until(page.start_button.isEnabled, "Start to be enabled")
        page.start_button.click()
        await until(lambda: saved, "the model to be saved", TRAINING_TIMEOUT_S)

    run(scenario())
    assert [item.name for item in read_metadata(saved[0]).classes] == ["background", "road", "water"]
