"""The installation self-test: all checks pass here, a broken GDAL/PROJ setup fails with exit code 3."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import torch

from engine.cli import main
from engine.cli.selftest_cmd import EXIT_SELF_TEST_FAILED
from engine.device import cuda_unavailable_reason
from engine.errors import JobCancelled, RasterError
from engine.progress import CancelToken
from engine.selftest import (
    DEFAULT_CHECKS,
    CheckResult,
    SelfTestCheck,
    SelfTestContext,
    check_gdal_data,
    check_prediction,
    run_self_test,
)

ROOT = Path(__file__).resolve().parents[2]


def test_every_check_passes_on_this_machine_and_names_the_device() -> None:
    reported: list[CheckResult] = []

    report = run_self_test(reported.append)

    assert report.passed, "\n".join(result.line() for result in report.results)
    assert [result.name for result in report.results] == [check.name for check in DEFAULT_CHECKS]
    assert reported == report.results
    assert all(result.seconds >= 0 for result in report.results)
    assert report.summary().startswith(f"All {len(DEFAULT_CHECKS)} checks passed")
    device = report.results[0]
    if torch.cuda.is_available():
        assert device.detail.startswith("GPU ")
    else:
        assert device.detail.startswith("CPU only")
        assert cuda_unavailable_reason() in device.detail
    details = {result.name: result.detail for result in report.results}
    assert "EPSG:32618" in details["PROJ (EPSG, reproject)"]
    assert "train loss" in details["training"]


def test_gdal_data_is_found_after_an_earlier_rasterio_environment_closed() -> None:
    with rasterio.Env():
        pass

    report = run_self_test(checks=[SelfTestCheck("GDAL data", check_gdal_data)])

    assert report.passed, report.results[0].detail


def test_a_failing_check_is_reported_and_the_others_still_run() -> None:
    def broken(context: SelfTestContext) -> str:
        raise RasterError("damaged.tif: the header is truncated. Export it again.")

    work_dirs: list[Path] = []

    def working(context: SelfTestContext) -> str:
        assert context.work_dir.is_dir()
        work_dirs.append(context.work_dir)
        return "fine"

    names_and_checks = [("first", working), ("broken", broken), ("last", working)]
    report = run_self_test(checks=[SelfTestCheck(name, check) for name, check in names_and_checks])

    assert [(result.name, result.passed) for result in report.results] == [
        ("first", True), ("broken", False), ("last", True),
    ]  # fmt: skip
    assert report.results[1].detail == "RasterError: damaged.tif: the header is truncated. Export it again."
    assert report.results[1].line().startswith("FAIL  broken")
    assert not report.passed
    assert "1 of 3 checks FAILED (broken)" in report.summary()
    assert len(work_dirs) == 2 and not work_dirs[0].exists(), "the scratch folder must be removed"


def test_prediction_without_a_trained_model_fails_with_a_reason() -> None:
    report = run_self_test(checks=[SelfTestCheck("prediction", check_prediction)])

    assert not report.passed
    assert "training check made no model" in report.results[0].detail


def test_a_cancel_stops_the_self_test_instead_of_failing_a_check() -> None:
    cancel = CancelToken()

    def cancelling(context: SelfTestContext) -> str:
        cancel.cancel()
        return "done"

    with pytest.raises(JobCancelled):
        run_self_test(checks=[SelfTestCheck("a", cancelling), SelfTestCheck("b", cancelling)], cancel=cancel)


def test_command_exits_nonzero_when_gdal_and_proj_data_are_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    # A Windows console's encoding, which lacks characters that check lines may hold ("→").
    env = {**os.environ, "GDAL_DATA": str(empty), "PROJ_DATA": str(empty), "PYTHONIOENCODING": "cp1252"}

    done = subprocess.run(
        [sys.executable, "-m", "engine", "--self-test"],
        cwd=ROOT, env=env, capture_output=True, text=True, encoding="cp1252", timeout=300,
    )  # fmt: skip

    assert done.returncode == EXIT_SELF_TEST_FAILED, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("FAIL  GDAL data") for line in lines), done.stdout
    assert any(line.startswith("FAIL  PROJ") and "proj.db" in line for line in lines), done.stdout
    assert any(line.startswith("PASS  device") for line in lines), done.stdout
    assert "checks FAILED" in lines[-1]
    assert "the self-test failed" in done.stderr


@pytest.mark.parametrize("argv", [[], ["--self-test", "predict", "model.safetensors", "a.tif", "-o", "out"]])
def test_command_line_needs_exactly_one_of_a_command_or_self_test(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)

    assert exited.value.code == 2
    assert "choose a COMMAND, or run --self-test alone" in capsys.readouterr().err
