"""``--polygons``: class maps and anomaly masks back as styled GeoPackages, one feature per region."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from rasterio.features import rasterize, shapes
from rasterio.transform import from_origin

from engine.cli import main
from engine.jobs.records import ArtifactKind
from engine.jobs.store import JobStore
from engine.labels.training import LabelSettings, label_masks
from engine.models.file import read_metadata
from engine.models.metadata import ModelMetadata
from engine.paths import jobs_db_path
from engine.progress import RecordingReporter
from engine.rasters.read import read_info
from engine.vectorize.prediction import write_prediction_polygons
from tests.engine.label_files import read_polygons
from tests.rasters import write_raster


def _burn(path: Path, like: Path, field: str = "class_id", fill: int = 255) -> np.ndarray:
    geometries, fields, _ = read_polygons(path)
    with rasterio.open(like) as dataset:
        return rasterize(
            zip(geometries, fields[field].tolist(), strict=True),
            out_shape=dataset.shape,
            transform=dataset.transform,
            fill=fill,
            dtype="uint8",
        )


def _components(classes: np.ndarray, skip: int = 255) -> int:
    """4-connected regions of a whole in-memory array, the reference for a seamless polygonisation."""
    return sum(1 for _, value in shapes(classes, connectivity=4) if int(value) != skip)


def test_predicted_regions_cross_tiles_as_one_feature_and_burn_back_exactly(
    model: Path, data: Path, tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raster = data / "images" / "scene0.tif"
    output = tmp_path / "out"
    args = ["predict", model, raster, "-o", output, "--tile", "32", "--overlap", "0", "--polygons"]
    assert main([str(arg) for arg in args]) == 0, capsys.readouterr().err
    assert "scene0_classes.gpkg" in capsys.readouterr().out
    gpkg, classes_tif = output / "scene0_classes.gpkg", output / "scene0_classes.tif"
    with rasterio.open(classes_tif) as dataset:
        classes = dataset.read(1)
    assert np.array_equal(_burn(gpkg, classes_tif), classes)
    geometries, fields, crs = read_polygons(gpkg)
    assert len(geometries) == _components(classes)
    widest = max(b[2] - b[0] for b in shapely.bounds(geometries)) / 10.0  # 10 m pixels
    assert widest > 32  # at least one region spans a tile seam and is still one feature
    names = {item.id: item.name for item in read_metadata(model).classes}
    assert all(names[int(i)] == n for i, n in zip(fields["class_id"], fields["class_name"], strict=True))
    # True ground areas: UTM's scale factor puts them within 0.2 % of the grid's 100 m² per pixel.
    assert fields["area_m2"].sum() == pytest.approx(np.count_nonzero(classes != 255) * 100.0, rel=2e-3)
    assert "32618" in crs
    with JobStore(jobs_db_path(isolated_home)) as store:
        (job,) = store.list_jobs()
        assert (ArtifactKind.POLYGONS, gpkg) in {(a.kind, a.path) for a in store.artifacts(job.id)}

    for written in output.iterdir():
        if written != gpkg:
            written.unlink()
    again = main([str(arg) for arg in args])
    assert again == 2 and "scene0_classes.gpkg" in capsys.readouterr().err  # exists: --overwrite replaces it
    alone = main([str(arg) for arg in args[:-1]] + ["--min-area", "5", "--overwrite"])
    assert alone == 2 and "add --polygons" in capsys.readouterr().err


def test_geopackage_carries_its_qgis_style(model: Path, tmp_path: Path) -> None:
    classes = np.zeros((1, 20, 20), dtype=np.uint8)
    classes[0, 5:10, 5:10] = 1
    raster = write_raster(tmp_path / "c_classes.tif", classes, nodata=255)
    metadata = read_metadata(model)
    target = tmp_path / "c_classes.gpkg"
    count = write_prediction_polygons(metadata, {"classes": raster}, read_info(raster), target, 0, 0)
    assert count == 2
    with closing(sqlite3.connect(target)) as connection:
        rows = connection.execute(
            "SELECT f_table_name, f_geometry_column, useAsDefault, styleQML FROM layer_styles"
        ).fetchall()
        listed = connection.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'")
        assert listed.fetchone() == ("attributes",)
    ((table, column, default, qml),) = rows
    assert (table, column, default) == ("c_classes", "geom", 1)
    assert 'type="categorizedSymbol"' in qml and 'attr="class_id"' in qml
    for item in metadata.classes:
        assert f'label="{item.name}"' in qml
        red, green, blue = (int(item.color[i : i + 2], 16) for i in (1, 3, 5))
        assert f"{red},{green},{blue}," in qml
    assert not list(tmp_path.glob(".*tmp"))


def test_min_area_counts_true_square_metres_in_a_geographic_crs(model: Path, tmp_path: Path) -> None:
    classes = np.zeros((1, 40, 40), dtype=np.uint8)
    classes[0, 2:12, 2:12] = 1  # 100 pixels
    classes[0, 30:32, 30:32] = 2  # 4 pixels
    step = 1e-4  # degrees, at 60 degrees north: about 11.14 m north-south by 5.58 m east-west
    raster = write_raster(
        tmp_path / "geo.tif",
        classes,
        nodata=255,
        crs="EPSG:4326",
        transform=from_origin(10.0, 60.002, step, step),
    )
    metadata = read_metadata(model)
    target = tmp_path / "geo.gpkg"
    write_prediction_polygons(metadata, {"classes": raster}, read_info(raster), target, 1000.0, 0)
    _, fields, _ = read_polygons(target)
    assert 2 not in fields["class_id"].tolist()  # about 249 m², under the minimum
    (big,) = fields["area_m2"][fields["class_id"] == 1]
    # WGS 84 at 60 N: a degree of latitude is 111 412 m, a degree of longitude 55 800 m.
    assert big == pytest.approx(100 * (step * 111_412) * (step * 55_800), rel=0.005)


def test_areas_in_web_mercator_are_true_ground_areas_not_inflated(model: Path, tmp_path: Path) -> None:
    """EPSG:3857 stretches lengths by 1/cos(latitude): at 45 degrees a 10 m grid cell covers 50 m²."""
    classes = np.zeros((1, 40, 40), dtype=np.uint8)
    classes[0, 10:20, 10:20] = 1  # 100 pixels of 10 x 10 Mercator metres
    north = 5_621_521.49  # Mercator y of 45 degrees north
    raster = write_raster(
        tmp_path / "mercator.tif", classes, nodata=255, crs="EPSG:3857",
        transform=from_origin(1_000_000.0, north + 200.0, 10.0, 10.0),
    )  # fmt: skip
    target = tmp_path / "mercator.gpkg"
    write_prediction_polygons(read_metadata(model), {"classes": raster}, read_info(raster), target, 0.0, 0)
    _, fields, _ = read_polygons(target)
    (square,) = fields["area_m2"][fields["class_id"] == 1]
    assert square == pytest.approx(100 * 100.0 * 0.5, rel=0.01)


def test_simplify_keeps_neighbours_sharing_their_edges(model: Path, tmp_path: Path) -> None:
    rows, cols = np.mgrid[0:60, 0:60]
    classes = np.where(cols > rows, 1, 0).astype(np.uint8)[None]  # a staircase diagonal
    classes[0, 40:50, 5:15] = 2
    raster = write_raster(tmp_path / "stairs.tif", classes, nodata=255)
    metadata = read_metadata(model)
    exact, smooth = tmp_path / "exact.gpkg", tmp_path / "smooth.gpkg"
    write_prediction_polygons(metadata, {"classes": raster}, read_info(raster), exact, 0, 0)
    write_prediction_polygons(metadata, {"classes": raster}, read_info(raster), smooth, 0, 2)
    exact_geometries, _, _ = read_polygons(exact)
    smooth_geometries, _, _ = read_polygons(smooth)
    assert (
        shapely.get_num_coordinates(smooth_geometries).sum()
        < shapely.get_num_coordinates(exact_geometries).sum() / 4
    )
    assert shapely.coverage_is_valid(smooth_geometries)
    union = shapely.union_all(smooth_geometries)
    assert union.area == pytest.approx(60 * 60) and shapely.area(smooth_geometries).sum() == pytest.approx(
        3600
    )


def test_anomalous_regions_carry_area_and_mean_score(model: Path, tmp_path: Path) -> None:
    scores = np.full((1, 30, 30), 0.1, dtype=np.float32)
    scores[0, 2:6, 2:6] = 2.0
    scores[0, 20:25, 20:30] = np.linspace(1.0, 3.0, 50, dtype=np.float32).reshape(5, 10)
    mask = (scores > 0.5).astype(np.uint8)
    heatmap = write_raster(tmp_path / "s_anomaly.tif", scores)
    anomaly_mask = write_raster(tmp_path / "s_anomaly_mask.tif", mask, nodata=255)
    metadata: ModelMetadata = replace(read_metadata(model), task="anomaly")
    target = tmp_path / "s_anomaly.gpkg"
    outputs = {"anomaly": heatmap, "anomaly_mask": anomaly_mask}
    assert write_prediction_polygons(metadata, outputs, read_info(heatmap), target, 0, 0) == 2
    _, fields, _ = read_polygons(target)
    order = np.argsort(fields["area_m2"])
    assert fields["area_m2"][order] == pytest.approx([16.0, 50.0], rel=1e-2)  # UTM: true ground m²
    assert fields["mean_score"][order] == pytest.approx([2.0, 2.0], rel=1e-5)


def test_real_footprints_round_trip_through_polygons(
    shared_data: Callable[[str], Path], model: Path, tmp_path: Path
) -> None:
    labels = shared_data("solaris/geotiff_labels.geojson")
    image = shared_data("solaris/sample_geotiff.tif")
    masks = label_masks(LabelSettings(labels), [image], tmp_path / "cache", RecordingReporter())
    mask_path = masks.images[0].mask
    target = tmp_path / "roofs.gpkg"
    write_prediction_polygons(
        read_metadata(model), {"classes": mask_path}, read_info(mask_path), target, 0, 0
    )
    with rasterio.open(mask_path) as dataset:
        mask = dataset.read(1)
    assert np.array_equal(_burn(target, mask_path), mask)
    assert len(read_polygons(target)[0]) == _components(mask, skip=-1)
