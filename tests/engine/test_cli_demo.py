"""``modelai demo`` runs the whole job and leaves every promised file and job behind."""

from __future__ import annotations

from pathlib import Path

import rasterio

from engine.cli import main
from engine.jobs.store import JobStore
from engine.paths import jobs_db_path
from engine.synthetic import CLASS_NAMES
from tests.engine.label_files import read_polygons


def test_demo_trains_predicts_and_records_four_jobs(tmp_path: Path, isolated_home: Path, capsys) -> None:
    workdir = tmp_path / "demo dir"
    assert main(["demo", "--workdir", str(workdir), "--epochs", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "1/4" in out and "4/4" in out and f"Everything is in {workdir}" in out
    for model in ("unet", "ae"):
        assert (workdir / "models" / f"{model}.safetensors").is_file()
    classes = workdir / "results" / "unet" / "test_scene_classes.tif"
    heat_map = workdir / "results" / "ae" / "test_scene_anomaly.tif"
    with rasterio.open(classes) as dataset, rasterio.open(heat_map) as heat:
        assert dataset.crs == heat.crs and dataset.crs.to_epsg() == 32618
        assert dataset.nodata == 255 and dataset.colormap(1)
    regions, fields, _ = read_polygons(workdir / "results" / "unet" / "test_scene_classes.gpkg")
    assert len(regions) > 0 and set(fields["class_name"]) <= set(CLASS_NAMES)
    _, anomalous, _ = read_polygons(workdir / "results" / "ae" / "test_scene_anomaly.gpkg")
    assert set(anomalous) == {"area_m2", "mean_score"}
    with JobStore(jobs_db_path(isolated_home)) as store:
        jobs = store.list_jobs()
    assert sorted(job.kind for job in jobs) == ["predict", "predict", "train-anomaly", "train-segmentation"]
    assert {job.status.value for job in jobs} == {"succeeded"}
