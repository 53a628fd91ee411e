"""Label files that cannot label the images: refused before a job is queued, with one line that says why.

Each case runs ``modelai train segmentation IMAGE --labels FILE`` in this process and checks exit 2,
the one error line (the file and what to do), no model written and no job recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import shapely

from tests.bad_inputs.conftest import TINY_TRAINING, CliRun, assert_refused_before_any_job
from tests.engine.label_files import write_labels
from tests.rasters import write_raster

CRS = "EPSG:32618"
HOUSE = shapely.box(10, 70, 30, 90)  # inside the 64 m image whose top-left corner is (0, 100)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    data = np.random.default_rng(0).integers(500, 3000, size=(3, 64, 64), dtype=np.uint16)
    return write_raster(tmp_path / "images" / "field.tif", data, crs=CRS)


def _no_crs(folder: Path) -> Path:
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        path = write_labels(folder / "nocrs.shp", [HOUSE], None, {"kind": ["house"]})
    path.with_suffix(".prj").unlink(missing_ok=True)
    return path


def _two_layers(folder: Path) -> Path:
    path = write_labels(folder / "two.gpkg", [HOUSE], CRS, {"kind": ["house"]}, layer="houses")
    return write_labels(path, [HOUSE], CRS, {"kind": ["shed"]}, layer="sheds", append=True)


def _empty(folder: Path) -> Path:
    path = folder / "empty.gpkg"
    folder.mkdir(parents=True, exist_ok=True)
    pyogrio.raw.write(
        str(path), np.array([], dtype=object), [], [], driver="GPKG", geometry_type="Polygon", crs=CRS
    )
    return path


CASES: dict[str, tuple[Callable[[Path], Path], list[str], list[str]]] = {
    "missing file": (lambda folder: folder / "absent.gpkg", [], ["does not exist"]),
    "not a vector file": (
        lambda folder: _text(folder / "labels.gpkg"),
        [],
        ["cannot be read as a GeoPackage", "save it again"],
    ),
    "unknown field": (
        lambda folder: write_labels(folder / "l.geojson", [HOUSE], CRS, {"kind": ["house"]}),
        ["--label-field", "type"],
        ["has no field 'type'", "its fields are: kind"],
    ),
    "unknown layer": (
        lambda folder: write_labels(folder / "l.gpkg", [HOUSE], CRS, {"kind": ["house"]}, layer="a"),
        ["--label-layer", "roads"],
        ["has no layer 'roads'", "its layers are: a"],
    ),
    "several layers and none chosen": (
        _two_layers,
        [],
        ["holds several layers (houses, sheds)", "--label-layer"],
    ),
    "no CRS": (_no_crs, [], ["has no CRS", "-a_srs"]),
    "points, not polygons": (
        lambda folder: write_labels(folder / "trees.geojson", [shapely.Point(20, 80)], CRS),
        [],
        ["1 geometries that are not polygons (Point)", "Buffer"],
    ),
    "empty file": (_empty, [], ["is empty", "Digitise"]),
    "far from the image": (
        lambda folder: write_labels(folder / "far.geojson", [shapely.box(9000, 9000, 9100, 9100)], CRS),
        [],
        ["overlaps none of the 1 image(s)", "field.tif covers x 0..64", "CRS is right"],
    ),
    "one class, rest ignored": (
        lambda folder: write_labels(folder / "one.geojson", [HOUSE], CRS),
        ["--unlabelled", "ignore"],
        ["hold a single class (one)", "--unlabelled background"],
    ),
    "fractional class id": (
        lambda folder: write_labels(folder / "f.geojson", [HOUSE], CRS, {"code": [1.5]}),
        ["--label-field", "code"],
        ["holds 1.5, which is no class id"],
    ),
}


def _text(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a GeoPackage\n")
    return path


@pytest.mark.parametrize("case", CASES)
def test_unusable_label_file_is_refused_before_any_job(
    case: str, image: Path, tmp_path: Path, isolated_home: Path, modelai: Callable[..., CliRun]
) -> None:
    make, options, expected = CASES[case]
    labels = make(tmp_path / "labels")
    output = tmp_path / "out"
    run = modelai(
        "train", "segmentation", image, "--labels", labels, *options, "-o", output / "m.safetensors",
        *TINY_TRAINING,
    )  # fmt: skip
    assert_refused_before_any_job(run, isolated_home, output, labels, *expected)
    assert len(run.err.strip().splitlines()) == 1


def test_masks_and_labels_together_are_refused(
    image: Path, tmp_path: Path, isolated_home: Path, modelai: Callable[..., CliRun]
) -> None:
    labels = write_labels(tmp_path / "l.geojson", [HOUSE], CRS)
    run = modelai(
        "train", "segmentation", image, image, "--labels", labels, "-o", tmp_path / "out" / "m.safetensors"
    )
    assert_refused_before_any_job(run, isolated_home, tmp_path / "out", "not both")


def test_invalid_polygons_are_repaired_and_counted(
    image: Path, tmp_path: Path, modelai: Callable[..., CliRun]
) -> None:
    bow_tie = shapely.Polygon([(10, 70), (30, 90), (30, 70), (10, 90)])
    labels = write_labels(tmp_path / "bowtie.geojson", [bow_tie, HOUSE.buffer(-5)], CRS, {"kind": ["a", "b"]})
    run = modelai(
        "train", "segmentation", image, "--labels", labels, "--label-field", "kind",
        "-o", tmp_path / "m.safetensors", *TINY_TRAINING,
    )  # fmt: skip
    assert run.code == 0, run.err
    assert "1 invalid polygon(s) of bowtie.geojson were repaired" in run.err
