"""Polygons rasterised onto each image's grid: formats, reprojection, classes, pixel rule, cache."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import rasterize

from engine.datasets import find_training_data
from engine.errors import DatasetError
from engine.labels.training import LabelSettings, label_masks
from engine.labels.vector_file import describe_label_file
from engine.progress import RecordingReporter
from tests.engine.label_files import reprojected_copy, write_labels
from tests.rasters import write_raster

CRS = "EPSG:32618"


def _image(folder: Path, name: str = "scene", size: int = 40) -> Path:
    """A 1 m grid whose top-left corner is (0, 100)."""
    data = np.random.default_rng(0).integers(1, 200, (1, size, size), dtype=np.uint8)
    return write_raster(folder / f"{name}.tif", data, crs=CRS)


def _mask(settings: LabelSettings, images: list[Path], cache: Path) -> tuple[np.ndarray, list[str]]:
    masks = label_masks(settings, images, cache, RecordingReporter())
    with rasterio.open(masks.images[0].mask) as dataset:
        return dataset.read(1), masks.class_names


def test_solaris_footprints_burn_exactly_their_pixel_centres(
    shared_data: Callable[[str], Path], tmp_path: Path
) -> None:
    labels = shared_data("solaris/geotiff_labels.geojson")
    image = shared_data("solaris/sample_geotiff.tif")
    mask, names = _mask(LabelSettings(labels), [image], tmp_path)
    with rasterio.open(image) as dataset:
        geometries = shapely.from_geojson([f.read_text() for f in [labels]])
        expected = rasterize(
            shapely.get_parts(geometries),
            out_shape=dataset.shape,
            transform=dataset.transform,
            fill=0,
            default_value=1,
            dtype="uint8",
        )
    assert names == ["background", "geotiff_labels"]
    assert np.array_equal(mask, expected)
    assert 0.03 < mask.mean() < 0.06  # 43 roofs in a wooded suburb


@pytest.mark.parametrize("suffix", [".gpkg", ".zip"])
def test_labels_in_another_crs_land_on_the_same_pixels(
    shared_data: Callable[[str], Path], tmp_path: Path, suffix: str
) -> None:
    original = shared_data("solaris/geotiff_labels.geojson")
    image = shared_data("solaris/sample_geotiff.tif")
    geographic = reprojected_copy(original, tmp_path / f"footprints{suffix}", "EPSG:4326")
    assert describe_label_file(geographic).crs_wkt is not None
    utm, _ = _mask(LabelSettings(original), [image], tmp_path / "a")
    lonlat, names = _mask(LabelSettings(geographic, field="building"), [image], tmp_path / "b")
    assert names == ["background", "yes"]
    # Straight edges reprojected vertex by vertex move by far less than a pixel: only edge pixels differ.
    assert np.mean(utm != lonlat) < 0.002
    assert abs(int(lonlat.sum()) - int(utm.sum())) < 0.02 * utm.sum()


def test_text_classes_get_sorted_ids_after_background(tmp_path: Path) -> None:
    image = _image(tmp_path)
    labels = write_labels(
        tmp_path / "kinds.geojson",
        [shapely.box(2, 80, 12, 90), shapely.box(20, 80, 30, 90), shapely.box(2, 65, 12, 75)],
        CRS,
        {"kind": ["tree", "building", "Background"]},
    )
    mask, names = _mask(LabelSettings(labels, field="kind"), [image], tmp_path / "bg")
    assert names == ["background", "building", "tree"]
    assert mask[15, 5] == 2 and mask[15, 25] == 1 and mask[30, 5] == 0 and mask[38, 38] == 0
    ignored = LabelSettings(labels, field="kind", unlabelled="ignore")
    mask, names = _mask(ignored, [image], tmp_path / "ignore")
    assert names == ["Background", "building", "tree"]
    assert mask[15, 5] == 2 and mask[15, 25] == 1 and mask[30, 5] == 0 and mask[38, 38] == 255


def test_an_image_with_only_class_0_and_unlabelled_pixels_is_not_read_as_binary(tmp_path: Path) -> None:
    first, second = (
        _image(tmp_path, "first"),
        write_raster(
            tmp_path / "second.tif",
            np.ones((1, 40, 40), dtype=np.uint8),
            crs=CRS,
            transform=rasterio.transform.from_origin(100, 100, 1, 1),
        ),
    )
    labels = write_labels(
        tmp_path / "scribbles.geojson",
        [shapely.box(2, 80, 12, 90), shapely.box(110, 80, 120, 90), shapely.box(125, 80, 130, 90)],
        CRS,
        {"kind": ["grass", "grass", "road"]},
    )
    settings = LabelSettings(labels, field="kind", unlabelled="ignore")
    masks = label_masks(settings, [first, second], tmp_path / "cache", RecordingReporter())
    pairs = find_training_data([first, second], [item.mask for item in masks.images], RecordingReporter())
    # first.tif holds grass (class 0) and unlabelled pixels only: no "0/255 binary mask" reading.
    assert pairs[0].mask.class_pixels == {0: 100}
    assert pairs[1].mask.class_pixels == {0: 100, 1: 50}


def test_integer_classes_are_used_as_ids(tmp_path: Path) -> None:
    image = _image(tmp_path)
    labels = write_labels(
        tmp_path / "ids.fgb", [shapely.box(2, 80, 12, 90), shapely.box(20, 80, 30, 90)], CRS, {"code": [3, 1]}
    )
    mask, names = _mask(LabelSettings(labels, field="code"), [image], tmp_path)
    assert names == ["background", "class 1", "class 2", "class 3"]
    assert mask[15, 5] == 3 and mask[15, 25] == 1 and mask[0, 39] == 0


def test_smaller_polygon_wins_holes_and_multipolygons_are_kept(tmp_path: Path) -> None:
    image = _image(tmp_path)
    parcel = shapely.box(0, 60, 40, 100)
    house = shapely.box(10, 80, 20, 90)
    donut = shapely.Polygon(
        shapely.box(0, 60, 40, 70).exterior.coords, [shapely.box(15, 62, 25, 68).exterior.coords]
    )
    pair = shapely.MultiPolygon([shapely.box(0, 70, 5, 75), shapely.box(35, 70, 40, 75)])
    # The house comes first in the file, the parcel that holds it after: the smaller one still wins.
    labels = write_labels(
        tmp_path / "overlaps.gpkg", [house, parcel], CRS, {"kind": ["house", "parcel"]}, layer="a"
    )
    mask, _ = _mask(LabelSettings(labels, field="kind"), [image], tmp_path / "o")
    assert mask[15, 15] == 1 and mask[5, 5] == 2 and mask[35, 5] == 2
    shapes = write_labels(tmp_path / "shapes.geojson", [donut, pair], CRS, {"kind": ["ring", "pair"]})
    mask, names = _mask(LabelSettings(shapes, field="kind"), [image], tmp_path / "s")
    ring, twin = names.index("ring"), names.index("pair")
    assert mask[35, 2] == ring and mask[35, 20] == 0  # the hole stays background
    assert (mask[25:30, 0:5] == twin).all() and (mask[25:30, 35:40] == twin).all() and mask[27, 20] == 0


def test_all_touched_takes_every_pixel_the_outline_touches(tmp_path: Path) -> None:
    image = _image(tmp_path)
    labels = write_labels(tmp_path / "thin.geojson", [shapely.box(10.2, 80.6, 20.4, 80.9)], CRS)
    with pytest.raises(DatasetError, match=r"cover no pixel centre.*--all-touched"):
        _mask(LabelSettings(labels), [image], tmp_path / "centre")
    mask, _ = _mask(LabelSettings(labels, all_touched=True), [image], tmp_path / "touched")
    assert int(mask.sum()) == 11 and (mask[19, 10:21] == 1).all()


def test_masks_are_cached_until_the_labels_change(tmp_path: Path) -> None:
    image = _image(tmp_path)
    labels = write_labels(
        tmp_path / "l.geojson", [shapely.box(2, 80, 12, 90), shapely.box(22, 70, 30, 90)], CRS
    )
    cache = tmp_path / "cache"
    first_reporter, second_reporter = RecordingReporter(), RecordingReporter()
    first = label_masks(LabelSettings(labels), [image], cache, first_reporter)
    mtime = first.images[0].mask.stat().st_mtime_ns
    second = label_masks(LabelSettings(labels), [image], cache, second_reporter)
    assert second.images[0].mask == first.images[0].mask
    assert second.images[0].mask.stat().st_mtime_ns == mtime
    assert second.images[0].class_pixels == first.images[0].class_pixels == {0: 1340, 1: 260}
    assert any("Rasterising" in text for _, text in first_reporter.messages)
    assert not any("Rasterising" in text for _, text in second_reporter.messages)
    write_labels(labels, [shapely.box(2, 80, 12, 90)], CRS)
    third = label_masks(LabelSettings(labels), [image], cache, RecordingReporter())
    assert third.images[0].mask != first.images[0].mask and third.images[0].class_pixels[1] == 100


def test_images_no_polygon_reaches_are_reported_and_left_out(tmp_path: Path) -> None:
    near = _image(tmp_path, "near")
    far = write_raster(
        tmp_path / "far.tif",
        np.ones((1, 20, 20), dtype=np.uint8),
        crs=CRS,
        transform=rasterio.transform.from_origin(5000, 5000, 1, 1),
    )
    labels = write_labels(tmp_path / "l.geojson", [shapely.box(2, 80, 12, 90)], CRS)
    reporter = RecordingReporter()
    masks = label_masks(LabelSettings(labels), [near, far], tmp_path / "cache", reporter)
    assert [item.image for item in masks.images] == [near] and masks.untouched == [far]
    assert any("far.tif" in text and "left out" in text for text in reporter.warnings())
