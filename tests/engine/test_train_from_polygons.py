"""``modelai train segmentation IMAGE --labels FILE`` on real images with real polygons, end to end."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import shapely

from engine.cli import main
from tests.engine.label_files import deepforest_boxes, read_polygons, reprojected_copy, write_labels

TINY = ["--batch-size", "8", "--base-width", "8", "--depth", "2", "--lr", "0.01", "--device", "cpu"]


def _train(args: list[object], capsys: pytest.CaptureFixture[str]) -> str:
    code = main(["train", "segmentation", *map(str, args), *TINY])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.err


def _metadata(model: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["models", "show", str(model), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tree_boxes_in_a_zipped_shapefile_teach_trees(
    shared_data: Callable[[str], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = shared_data("deepforest/OSBS_029.tif")
    boxes = deepforest_boxes(shared_data("deepforest/OSBS_029.csv"), image, tmp_path / "trees.zip")
    model = tmp_path / "trees.safetensors"
    args = [image, "--labels", boxes, "--label-field", "label", "-o", model]
    _train([*args, "--patch", "64", "--epochs", "3", "--patches-per-epoch", "48"], capsys)
    metadata = _metadata(model, capsys)
    assert [item["name"] for item in metadata["classes"]] == ["background", "Tree"]
    # Held out: the bottom 80 rows. Trees fill about half of them, so always answering one class
    # scores a mean IoU near 0.27; after three short epochs the U-Net reached 0.62 here.
    assert metadata["training"]["best_metric"] > 0.45


def test_footprints_in_a_lonlat_geopackage_train_on_a_utm_image_and_come_back_as_polygons(
    shared_data: Callable[[str], Path],
    tmp_path: Path,
    isolated_home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    image = shared_data("solaris/sample_geotiff.tif")
    utm = shared_data("solaris/geotiff_labels.geojson")
    geometries, _, _ = read_polygons(utm)
    named = write_labels(
        tmp_path / "named.geojson", list(geometries), "EPSG:32616", {"kind": ["building"] * len(geometries)}
    )
    footprints = reprojected_copy(named, tmp_path / "footprints.gpkg", "EPSG:4326", keep=("kind",))
    model = tmp_path / "roofs.safetensors"
    args = [image, "--labels", footprints, "--label-field", "kind", "-o", model, "--patch", "32"]
    _train([*args, "--epochs", "1", "--patches-per-epoch", "16"], capsys)
    (mask,) = (isolated_home / "cache" / "labels").glob("*/sample_geotiff_mask.tif")
    written = mask.stat().st_mtime_ns
    _train([*args, "--epochs", "1", "--patches-per-epoch", "16", "--overwrite"], capsys)
    assert mask.stat().st_mtime_ns == written  # the second training reads the cached mask
    assert [item["name"] for item in _metadata(model, capsys)["classes"]] == ["background", "building"]

    output = tmp_path / "predicted"
    code = main(["predict", str(model), str(image), "-o", str(output), "--polygons", "--min-area", "20"])
    assert code == 0, capsys.readouterr().err
    regions, fields, crs = read_polygons(output / "sample_geotiff_classes.gpkg")
    assert set(fields["class_name"].tolist()) <= {"background", "building"}
    assert (fields["area_m2"] >= 20).all() and "32616" in crs
    assert shapely.area(regions).sum() <= 450 * 450 + 1e-6
