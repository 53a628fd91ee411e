"""The command line people expect: any console encoding, a fast ``--help``, global options after
the verb, ``-q``/``-v``, ``--json`` results, SIGTERM as a cancel, exit codes in ``--help``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import EXIT_CANCELLED, main
from engine.jobs.store import JobStore
from engine.paths import jobs_db_path
from tests.engine.test_cli_train import TINY

ROOT = Path(__file__).resolve().parents[2]
HELP_ARGVS = [
    [],
    ["train"], ["train", "segmentation"], ["train", "anomaly"], ["predict"],
    ["jobs"], ["jobs", "list"], ["jobs", "show"], ["jobs", "rerun"], ["jobs", "cancel"], ["jobs", "resume"],
    ["models"], ["models", "show"], ["demo"],
]  # fmt: skip


def run_modelai_child(code: str, encoding: str = "cp1252", **kwargs) -> subprocess.CompletedProcess[bytes]:
    """Python code run in a child whose console encoding is ``encoding`` (as on Windows)."""
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, timeout=600, **kwargs
    )


def test_every_help_survives_a_cp1252_console_and_lists_the_exit_codes():
    code = (
        "from engine.cli import main\n"
        f"for argv in {HELP_ARGVS!r}:\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit as exited:\n"
        "        assert exited.code == 0, (argv, exited.code)\n"
        "    print('=== end of', argv, flush=True)\n"
    )
    done = run_modelai_child(code)
    err = done.stderr.decode("cp1252")
    assert done.returncode == 0, err
    out = done.stdout.decode("cp1252")
    assert out.count("=== end of") == len(HELP_ARGVS) and "Traceback" not in err
    assert "(paired by file name: a.tif <-> a.tif or a_mask.tif)" in " ".join(out.split())
    for page in out.split("=== end of")[:-1]:
        assert "Exit codes: 0 success" in page and "130 cancelled" in " ".join(page.split())
        assert "--home DIR" in page and "-q, --quiet" in page


def test_results_and_progress_survive_a_cp1252_log(scene_dir: Path, tmp_path: Path):
    model, results = tmp_path / "m.safetensors", tmp_path / "results"
    train = scene_dir / "train"
    steps = [
        ["train", "segmentation", str(train / "images"), str(train / "masks"), "-o", str(model), *TINY],
        ["predict", str(model), str(scene_dir / "holdout" / "images"), "-o", str(results), "--tile", "128"],
        ["jobs", "list"],
        ["models", "show", str(model)],
    ]
    code = "from engine.cli import main\n" + "".join(f"assert main({argv!r}) == 0\n" for argv in steps)
    done = run_modelai_child(code)
    out, err = done.stdout.decode("cp1252"), done.stderr.decode("cp1252")
    assert done.returncode == 0, err
    assert f"epoch(s) -> {model}" in out and f"1 raster(s) -> {results}" in out
    assert "epoch 2/2" in err and re.search(r"#{24} (\d+)/\1 predict", err) and "Traceback" not in err


def test_modelai_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from engine.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(name for name in ('torch', 'rasterio', 'numpy') if name in sys.modules))\n"
    )
    done = run_modelai_child(code, encoding="utf-8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines()[-1] == "[]"


def test_global_options_work_after_the_command_too(tmp_path: Path, capsys):
    after, before = tmp_path / "after", tmp_path / "before"
    assert main(["jobs", "list", "--home", str(after)]) == 0
    assert main(["--home", str(before), "-q", "jobs", "list", "--json"]) == 0
    assert main(["-q", "jobs", "--home", str(before), "list", "-v"]) == 0
    assert jobs_db_path(after).is_file() and jobs_db_path(before).is_file()
    assert "no jobs recorded yet" in capsys.readouterr().out


def test_train_rejects_an_unknown_precision(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["train", "anomaly", str(tmp_path), "-o", str(tmp_path / "m.safetensors"), "--precision", "f32"])
    assert exited.value.code == 2
    assert "argument --precision: invalid choice: 'f32'" in capsys.readouterr().err


def test_json_results_of_train_predict_and_jobs_show(scene_dir: Path, tmp_path: Path, capsys):
    model, results = tmp_path / "m.safetensors", tmp_path / "results"
    train = scene_dir / "train"
    argv = ["train", "segmentation", str(train / "images"), str(train / "masks"), "-o", str(model), *TINY]
    assert main([*argv, "--json", "-q"]) == 0
    captured = capsys.readouterr()
    trained = json.loads(captured.out)
    assert trained["model"] == str(model) and trained["epochs_run"] == 2 and trained["status"] == "succeeded"
    assert "epoch 1/2" not in captured.err and "Device:" not in captured.err

    holdout = scene_dir / "holdout" / "images"
    assert main(["predict", str(model), str(holdout), "-o", str(results), "--tile", "128", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    [raster] = predicted["rasters"]
    assert raster["raster"] == str(holdout / "holdout.tif")
    assert Path(raster["outputs"]["classes"]).is_file() and raster["summary"]["valid_pixels"] > 0

    assert main(["jobs", "show", str(trained["job_id"]), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == trained["job_id"] and shown["status"] == "succeeded"
    assert [entry["epoch"] for entry in shown["epochs"]] == [1, 2]
    assert {entry["kind"] for entry in shown["artifacts"]} >= {"model"}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_cancels_like_ctrl_c(scene_dir: Path, tmp_path: Path, isolated_home: Path):
    train = scene_dir / "train" / "images"
    command = [
        sys.executable,
        "-m",
        "engine",
        "train",
        "anomaly",
        str(train),
        "-o",
        str(tmp_path / "m.safetensors"),
    ]
    command += [*TINY, "--epochs", "500"]
    with subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True) as process:
        seen = []
        for line in process.stderr:
            seen.append(line)
            if line.startswith("epoch 1/500"):
                process.send_signal(signal.SIGTERM)
                break
        rest = process.stderr.read()
        code = process.wait(timeout=300)
    assert code == EXIT_CANCELLED, "".join(seen) + rest
    assert "SIGTERM: stopping after the current step" in rest and "Traceback" not in rest
    with JobStore(jobs_db_path(isolated_home)) as store:
        [job] = store.list_jobs()
    assert job.status == "cancelled"
