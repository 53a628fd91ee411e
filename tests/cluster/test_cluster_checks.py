"""What a cluster run checks before its first task: the ``--cluster`` value, Dask being installed,
every worker seeing the paths, and which rasters an earlier run completed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import EXIT_BAD_INPUT
from engine.cluster.archive import check_workers
from engine.cluster.completed import finished_prediction
from engine.cluster.connect import INSTALL_HINT, parse_address
from engine.cluster.worker import RasterToCheck, inspect_paths
from engine.errors import ClusterError
from engine.inference.predict import PredictOptions
from engine.jobs.runner import read_store
from engine.models.file import read_metadata
from engine.output_metadata.provenance import file_sha256
from tests.cluster.conftest import OVERLAP, TILE

ROOT = Path(__file__).resolve().parents[2]


def run_child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("local:2", (2, None, None)),
        ("tcp://10.0.0.5:8786", (None, "tcp://10.0.0.5:8786", None)),
    ],
)
def test_the_cluster_forms(value, expected):
    address = parse_address(value)
    assert (address.local_workers, address.scheduler_address, address.scheduler_file) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("local:0", "local:N needs a number of worker processes"),
        ("local:two", "local:N needs a number of worker processes"),
        ("10.0.0.5:8786", "give local:N (N worker processes here), tcp://HOST:PORT or a scheduler file"),
        ("missing-scheduler.json", "dask scheduler --scheduler-file missing-scheduler.json"),
    ],
)
def test_a_wrong_cluster_value_says_which_forms_work(value, message):
    with pytest.raises(ClusterError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_address(value)


def test_a_scheduler_file_is_taken_as_written_by_dask_scheduler(tmp_path):
    path = tmp_path / "scheduler.json"
    path.write_text(json.dumps({"address": "tcp://10.0.0.5:8786"}))
    assert parse_address(str(path)).scheduler_file == path


def test_without_dask_the_command_names_the_extra_to_install_and_records_nothing(archive, tmp_path):
    model, rasters = archive
    argv = [
        "--home",
        str(tmp_path / "home"),
        "predict",
        str(model),
        str(rasters[0]),
        "-o",
        str(tmp_path / "out"),
    ]
    code = (
        "import sys\n"
        "sys.modules['distributed'] = None  # as where the cluster extra is not installed\n"
        "from engine.cli import main\n"
        f"sys.exit(main({[*argv, '--cluster', 'local:2']!r}))\n"
    )
    done = run_child(code)
    assert done.returncode == EXIT_BAD_INPUT
    [line] = done.stderr.splitlines()
    assert line.startswith("modelai: error: --cluster needs Dask") and line.endswith(INSTALL_HINT)
    assert INSTALL_HINT == 'pip install "modelai-desktop[cluster]"'
    with read_store(tmp_path / "home") as store:
        assert store.list_jobs() == []


def test_the_predict_command_loads_dask_only_for_a_cluster_run():
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        "for argv in (['--help'], ['predict', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print(sorted(name for name in ('dask', 'distributed') if name in sys.modules))\n"
    )
    done = run_child(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "[]"
    assert "--cluster ADDRESS" in done.stdout


def test_a_worker_names_the_paths_it_cannot_see(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / ".check").write_text("token")
    raster = tmp_path / "a.tif"
    raster.write_bytes(b"1234")
    rasters = [
        RasterToCheck(str(raster), 4),
        RasterToCheck(str(tmp_path / "gone.tif"), 10),
        RasterToCheck("/vsizip/archive.zip/b4.tif", None),
    ]
    assert inspect_paths(rasters[:1], str(output), ".check", "token").problems == []
    problems = inspect_paths(rasters, str(output), ".check", "token").problems
    assert problems == [f"cannot see {tmp_path / 'gone.tif'}"]
    [resized] = inspect_paths([RasterToCheck(str(raster), 5)], str(output), ".check", "token").problems
    assert resized.startswith(f"sees other files than the client at {raster}")
    # The same path, but not the client's folder: the check file the client wrote is not in it.
    [elsewhere] = inspect_paths(rasters[:1], str(output), ".check", "other token").problems
    assert elsewhere.startswith(f"sees another folder at {output} than the client")
    [no_folder] = inspect_paths(rasters[:1], str(tmp_path / "nowhere"), ".check", "token").problems
    assert no_folder == f"cannot see the output folder {tmp_path / 'nowhere'}"


def test_the_run_stops_before_any_task_when_a_worker_cannot_see_a_raster(archive, cluster, tmp_path):
    _, rasters = archive
    client, address = cluster
    gone = tmp_path / "gone.tif"
    with pytest.raises(ClusterError) as raised:
        check_workers(client, parse_address(address), [rasters[0], gone], tmp_path)
    message = str(raised.value)
    assert message.count("cannot see") == 2 and f"cannot see {gone}" in message
    assert all(worker in message for worker in client.scheduler_info()["workers"])
    assert "on storage that every worker mounts at the same path" in message
    assert list(tmp_path.glob(".modelai-cluster-check-*")) == []  # the check file is removed


def test_complete_outputs_are_recognised_by_raster_and_model(archive, plain_outputs, tmp_path):
    model, rasters = archive
    folder = plain_outputs(1)
    metadata, sha256 = read_metadata(model), file_sha256(model)
    options = PredictOptions(tile=TILE, overlap=OVERLAP)
    done = finished_prediction(metadata, rasters[0], folder, options, sha256)
    assert done is not None and done.outputs["classes"] == folder / "scene0_classes.tif"
    assert done.summary["raster"] == str(rasters[0])
    assert finished_prediction(metadata, rasters[0], folder, options, "another model") is None
    assert finished_prediction(metadata, tmp_path / "scene0.tif", folder, options, sha256) is None
    with_probabilities = PredictOptions(tile=TILE, overlap=OVERLAP, probabilities=True)
    assert finished_prediction(metadata, rasters[0], folder, with_probabilities, sha256) is None
