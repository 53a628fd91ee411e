"""The installation self-test: can this machine read and write geodata, train and predict?

An installed app fails in ways a developer's machine never shows: GDAL or PROJ data missing from the
bundle, a ``PROJ_LIB`` left by QGIS that points at another PROJ's database, a CUDA build without a
driver, a GPU without kernels for its architecture. ``modelai --self-test`` and the window's Help
menu run the same checks end to end on tiny synthetic data, in a temporary folder, and report each
one as PASS or FAIL with its time, so a support request starts with facts instead of guesses.

Each check runs even when an earlier one failed; only the prediction needs the training's model.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
import torch
from rasterio.crs import CRS
from rasterio.env import GDALDataFinder
from rasterio.transform import from_origin
from rasterio.warp import transform as transform_points

import engine
from engine.device import cuda_unavailable_reason, describe_device, resolve_device
from engine.errors import EngineError, JobCancelled
from engine.inference.predict import PredictOptions, predict_raster
from engine.labels.vector_file import read_label_features
from engine.models import build_model
from engine.progress import CancelToken, NullReporter
from engine.synthetic import CLASS_NAMES, Scene, write_scene
from engine.training import TrainConfig, train
from engine.vectorize.geopackage import categorized_style, write_styled_geopackage

GIB = 1024**3
# Longitude -75° is the central meridian of UTM zone 18N: a point on it maps to easting 500 000 m
# exactly, and latitude 40° to northing 4 427 757.22 m (WGS 84).
REFERENCE_LONLAT = (-75.0, 40.0)
REFERENCE_UTM = (500000.0, 4427757.2187)
REPROJECTION_TOLERANCE_M = 0.01
TINY_UNET = {"in_channels": 5, "num_classes": len(CLASS_NAMES), "base_width": 8, "depth": 2}
SCENE_SIZE = (96, 96)


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome: ``detail`` says what was found, or what went wrong."""

    name: str
    passed: bool
    detail: str
    seconds: float

    def line(self) -> str:
        """``PASS  name  (1.23 s)  detail``, the form the terminal and the log show."""
        return f"{'PASS' if self.passed else 'FAIL'}  {self.name:<24} ({self.seconds:6.2f} s)  {self.detail}"


@dataclass(frozen=True)
class SelfTestReport:
    """All checks in the order they ran, and the total time."""

    results: list[CheckResult]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def summary(self) -> str:
        """One closing line: all passed, or how many failed."""
        failed = [result.name for result in self.results if not result.passed]
        if not failed:
            return f"All {len(self.results)} checks passed in {self.seconds:.1f} s."
        names = ", ".join(failed)
        return f"{len(failed)} of {len(self.results)} checks FAILED ({names}) in {self.seconds:.1f} s."


@dataclass
class SelfTestContext:
    """What the checks share: a scratch folder, the device, and what training left for prediction."""

    work_dir: Path
    device: str
    cancel: CancelToken
    scene: Scene | None = None
    model_path: Path | None = None


@dataclass(frozen=True)
class SelfTestCheck:
    """A named check; ``run`` returns the detail shown on success and raises to fail."""

    name: str
    run: Callable[[SelfTestContext], str]


def check_device(context: SelfTestContext) -> str:
    """Which device jobs will use, and if it is the CPU, why no GPU is used."""
    info = describe_device(resolve_device(context.device))
    build = f"torch {torch.__version__}"
    if info.kind == "cuda":
        memory = f", {info.memory_bytes / GIB:.1f} GiB" if info.memory_bytes else ""
        return f"GPU {info.name}{memory} ({build}, CUDA {torch.version.cuda})"
    memory = f", {info.memory_bytes / GIB:.0f} GiB RAM" if info.memory_bytes else ""
    why = cuda_unavailable_reason() if not torch.cuda.is_available() else info.reason
    return f"CPU only{memory} ({build}): {why}"


def check_gdal_data(context: SelfTestContext) -> str:
    """GDAL finds its data folder (some drivers and coordinate systems need its files).

    Looked up inside a rasterio environment, as every rasterio operation runs: outside one, GDAL
    forgets the data folder once the process's first environment has closed.
    """
    with rasterio.Env():
        found = GDALDataFinder().find_file("gdalvrt.xsd")
    if found is None:
        raise EngineError(
            "GDAL cannot find its data files (gdalvrt.xsd): GDAL_DATA is missing or points to a wrong "
            "folder. Reinstall ModelAI; if GDAL_DATA is set globally (e.g. by another GIS), unset it."
        )
    return f"GDAL {rasterio.__gdal_version__}, data in {Path(found).parent}"


def check_proj(context: SelfTestContext) -> str:
    """PROJ's database answers an EPSG lookup and reprojects a known point to the centimetre."""
    crs = CRS.from_epsg(32618)
    if crs.to_epsg() != 32618 or crs.linear_units != "metre":
        raise EngineError(f"EPSG:32618 came back as {crs.to_string()!r}; PROJ's database looks damaged.")
    xs, ys = transform_points("EPSG:4326", crs, [REFERENCE_LONLAT[0]], [REFERENCE_LONLAT[1]])
    error = math.hypot(xs[0] - REFERENCE_UTM[0], ys[0] - REFERENCE_UTM[1])
    if not error <= REPROJECTION_TOLERANCE_M:
        raise EngineError(
            f"Reprojecting lon/lat {REFERENCE_LONLAT} to UTM 18N gave ({xs[0]:.3f}, {ys[0]:.3f}), "
            f"{error:.3f} m from the true {REFERENCE_UTM}. PROJ is misconfigured: reinstall ModelAI."
        )
    return f"PROJ {rasterio.__proj_version__}: EPSG:32618 found, a point reprojected to {error * 1000:.1f} mm"


def check_cog(context: SelfTestContext) -> str:
    """Writes a small Cloud Optimized GeoTIFF and reads it back bit for bit, with its georeference."""
    path = context.work_dir / "check_cog.tif"
    rows, cols = np.mgrid[0:300, 0:300]
    data = np.stack([rows * 7 + cols, rows * cols % 65535, rows - cols + 400]).astype(np.uint16)
    transform = from_origin(500000.0, 4500000.0, 10.0, 10.0)
    profile = {"width": 300, "height": 300, "count": 3, "dtype": "uint16", "crs": "EPSG:32618"}
    with rasterio.open(
        path, "w", driver="COG", transform=transform, compress="deflate", blocksize=256, **profile
    ) as dataset:
        dataset.write(data)
    with rasterio.open(path) as dataset:
        layout = dataset.tags(ns="IMAGE_STRUCTURE").get("LAYOUT")
        same = np.array_equal(dataset.read(), data)
        georeferenced = dataset.crs == CRS.from_epsg(32618) and dataset.transform == transform
        overviews = dataset.overviews(1)
    if layout != "COG" or not same or not georeferenced or not overviews:
        raise EngineError(
            f"The GeoTIFF written to {path} came back wrong (layout {layout}, pixels equal {same}, "
            f"georeference kept {georeferenced}, overviews {overviews}). GDAL's GeoTIFF support is broken."
        )
    return f"300×300×3 uint16 COG with overviews {overviews} written and read back identical"


def check_geopackage(context: SelfTestContext) -> str:
    """Writes a styled GeoPackage (polygons out) and reads it back as labels (polygons in), offline."""
    path = context.work_dir / "check_labels.gpkg"
    field = np.array([2], dtype=np.int32)
    parcel = shapely.Polygon([(0, 0), (90, 0), (90, 60), (0, 60)], [[(30, 20), (60, 20), (60, 40), (30, 40)]])
    style = categorized_style("class_id", [(2, "field", "#7fbf4d")])
    utm = CRS.from_epsg(32618).to_wkt()
    write_styled_geopackage(path, "check", np.array([parcel]), {"class_id": field}, utm, style)
    read = read_label_features(path, field="class_id")
    same = read.geometries[0].equals(parcel) and read.values is not None and read.values[0] == 2
    if not same or CRS.from_wkt(read.crs_wkt).to_epsg() != 32618:
        raise EngineError(
            f"The GeoPackage written to {path} came back wrong (polygon and class kept {same}, CRS "
            f"{CRS.from_wkt(read.crs_wkt).to_string()}). GDAL's vector support is broken: reinstall ModelAI."
        )
    versions = f"pyogrio {pyogrio.__version__}, GDAL {pyogrio.__gdal_version_string__}"
    return f"GeoPackage with a QGIS style written and read back ({versions})"


def check_network(context: SelfTestContext) -> str:
    """A small U-Net runs forward and backward on the device (catches GPUs without matching kernels)."""
    device = resolve_device(context.device)
    torch.manual_seed(0)
    model = build_model("unet", TINY_UNET).to(device)
    batch = torch.randn(2, TINY_UNET["in_channels"], 64, 64, device=device)
    output = model(batch)
    output.float().mean().backward()
    expected = (2, TINY_UNET["num_classes"], 64, 64)
    if tuple(output.shape) != expected or not torch.isfinite(output).all():
        raise EngineError(f"The U-Net gave an output of shape {tuple(output.shape)} (expected {expected}).")
    parameters = sum(p.numel() for p in model.parameters())
    return f"U-Net of {parameters:,} parameters, forward and backward on {device}"


def check_training(context: SelfTestContext) -> str:
    """A few training steps on a synthetic scene through the engine's own training entry point."""
    context.scene = write_scene(context.work_dir / "scene", "selftest", size=SCENE_SIZE, seed=7)
    config = TrainConfig(
        task="segmentation",
        images=[context.scene.image],
        masks=[context.scene.mask],
        output=context.work_dir / "selftest.safetensors",
        patch=32,
        batch_size=4,
        epochs=2,
        val_fraction=0.3,
        device=context.device,
        base_width=TINY_UNET["base_width"],
        depth=TINY_UNET["depth"],
        patches_per_epoch=8,
        class_names=list(CLASS_NAMES),
    )
    result = train(config, NullReporter(), context.cancel)
    losses = [entry["train_loss"] for entry in result.history]
    if not all(math.isfinite(loss) for loss in losses):
        raise EngineError(f"Training gave non-finite losses {losses}; the device computes wrongly.")
    context.model_path = result.model_path
    batches = config.patches_per_epoch // config.batch_size
    return f"{result.epochs_run} epochs of {batches} batches, train loss {losses[0]:.3f} → {losses[-1]:.3f}"


def check_prediction(context: SelfTestContext) -> str:
    """Tiled prediction of the scene with the trained model into a georeferenced class map."""
    if context.model_path is None or context.scene is None:
        raise EngineError("Skipped: the training check made no model to predict with (see its error).")
    options = PredictOptions(tile=64, overlap=16, batch_size=4, device=context.device)
    result = predict_raster(
        context.model_path, context.scene.image, context.work_dir / "predicted", options,
        NullReporter(), context.cancel,
    )  # fmt: skip
    with rasterio.open(context.scene.image) as source, rasterio.open(result.outputs["classes"]) as classes:
        matches = (classes.shape, classes.crs, classes.transform) == (
            source.shape, source.crs, source.transform,
        )  # fmt: skip
    if not matches:
        raise EngineError(f"The class map {result.outputs['classes']} lost the input's size or georeference.")
    height, width = SCENE_SIZE
    return f"{width}×{height} px class map in {result.seconds:.2f} s, same size and georeference as the input"


DEFAULT_CHECKS: tuple[SelfTestCheck, ...] = (
    SelfTestCheck("device", check_device),
    SelfTestCheck("GDAL data", check_gdal_data),
    SelfTestCheck("PROJ (EPSG, reproject)", check_proj),
    SelfTestCheck("GeoTIFF (COG) write/read", check_cog),
    SelfTestCheck("GeoPackage write/read", check_geopackage),
    SelfTestCheck("U-Net on device", check_network),
    SelfTestCheck("training", check_training),
    SelfTestCheck("prediction", check_prediction),
)


def run_self_test(
    reporter_fn: Callable[[CheckResult], None] | None = None,
    *,
    device: str = "auto",
    checks: Sequence[SelfTestCheck] = DEFAULT_CHECKS,
    cancel: CancelToken | None = None,
) -> SelfTestReport:
    """Runs every check in a temporary folder (removed afterwards) and reports each as it finishes.

    Raises:
        JobCancelled: ``cancel`` was set; a cancel is the user's choice, not a failed check.
    """
    cancel = cancel or CancelToken()
    started = time.perf_counter()
    results: list[CheckResult] = []
    with tempfile.TemporaryDirectory(prefix="modelai-selftest-") as folder:
        context = SelfTestContext(Path(folder), device, cancel)
        for check in checks:
            cancel.raise_if_cancelled("The self-test")
            result = _run_check(check, context)
            results.append(result)
            if reporter_fn is not None:
                reporter_fn(result)
    return SelfTestReport(results, time.perf_counter() - started)


def _run_check(check: SelfTestCheck, context: SelfTestContext) -> CheckResult:
    started = time.perf_counter()
    try:
        detail = check.run(context)
    except JobCancelled:
        raise
    # The point of a self-test is to turn any failure of the installation (a missing DLL, a CUDA
    # error, a GDAL error) into a FAIL line and keep going, so every exception type counts here.
    except Exception as exc:
        detail = f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no message'}"
        return CheckResult(check.name, False, detail, time.perf_counter() - started)
    return CheckResult(check.name, True, detail, time.perf_counter() - started)


def header() -> str:
    """The line printed above the results: which ModelAI and libraries are being tested."""
    versions = f"torch {torch.__version__}, rasterio {rasterio.__version__}, numpy {np.__version__}"
    return f"ModelAI {engine.__version__} self-test ({versions})"
