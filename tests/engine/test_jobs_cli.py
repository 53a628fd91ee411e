"""``modelai jobs ...`` and the command's error policy, on a real job store in a ``--home`` folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import EXIT_BAD_INPUT, EXIT_INTERNAL_ERROR, main
from engine.jobs.records import JobStatus
from engine.jobs.runner import open_store, run, submit
from engine.jobs.specs import TrainSpec, spec_to_dict
from engine.progress import CancelToken, NullReporter
from tests.engine.runner_child import tiny_config, tiny_predict_spec


def modelai(home: Path, *args: str) -> int:
    return main(["--home", str(home), *args])


def test_list_and_show_a_prediction_job_with_its_outputs(tmp_path, model, data, capsys):
    home = tmp_path / "home"
    with open_store(home) as store:
        outcome = run(
            store,
            tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out"),
            NullReporter(),
            CancelToken(),
        )
    job_id = outcome.job_id

    assert modelai(home, "jobs", "list") == 0
    _, row = capsys.readouterr().out.splitlines()
    assert row.split()[:3] == [str(job_id), "predict", "succeeded"]
    assert row.endswith(f"1 raster(s) → {tmp_path / 'out'}")

    assert modelai(home, "jobs", "list", "--json") == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["status"], listed["spec"]["model"]) == (job_id, "succeeded", str(model))
    assert modelai(home, "jobs", "list", "--status", "failed") == 0
    assert capsys.readouterr().out == "no failed jobs\n"

    (tmp_path / "out" / "scene0_classes.qml").unlink()
    assert modelai(home, "jobs", "show", str(job_id)) == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"job {job_id}  predict  succeeded\n")
    assert f"model: {json.dumps(str(model))}" in shown
    assert f"{tmp_path / 'out' / 'scene0_classes.tif'}  (" in shown
    assert f"{tmp_path / 'out' / 'scene0_classes.qml'}  [missing]" in shown
    assert "device     cpu (" in shown and "error:" not in shown


def test_show_prints_the_epoch_table_and_the_error_with_its_cause(tmp_path, data, capsys):
    home = tmp_path / "home"
    with open_store(home) as store:
        spec = TrainSpec(tiny_config(data, tmp_path / "m"))
        job_id = store.create_job(spec.kind, json.dumps(spec_to_dict(spec)), status="running")
        for epoch in (1, 2):
            store.record_epoch(
                job_id,
                epoch,
                1.0 / epoch,
                2.0 / epoch,
                {"mean_iou": 0.25 * epoch, "iou/road": 0.1},
                1e-3,
                65.0,
            )
        store.mark_failed(
            job_id, "disk full while writing m", "OutputError: disk full while writing m\nOSError: [Errno 28]"
        )

    assert modelai(home, "jobs", "show", str(job_id)) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[lines.index("epochs:") + 1 : lines.index("epochs:") + 4]
    assert table[0].split() == ["epoch", "train", "loss", "val", "loss", "mean_iou", "lr", "time"]
    assert table[2].split() == ["2", "0.5000", "1.0000", "0.5000", "1.00e-03", "1m05s"]
    assert lines[-3:] == [
        "error: disk full while writing m",
        "  OutputError: disk full while writing m",
        "  OSError: [Errno 28]",
    ]


def test_rerun_refuses_to_overwrite_then_runs_a_linked_job(tmp_path, model, data, capsys):
    home = tmp_path / "home"
    with open_store(home) as store:
        first = run(
            store,
            tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out"),
            NullReporter(),
            CancelToken(),
        ).job_id

    assert modelai(home, "jobs", "rerun", str(first)) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("modelai: error: Output(s) already exist") and error.count("\n") == 1

    assert modelai(home, "jobs", "rerun", str(first), "--overwrite") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[-1] == f"1 raster(s) predicted into {tmp_path / 'out'}"
    assert captured.err.splitlines()[-1] == f"Recorded as job {first + 1} (`modelai jobs show {first + 1}`)."
    with open_store(home) as store:
        again = store.get_job(first + 1)
        assert (again.status, again.parent_job_id, again.spec["options"]["overwrite"]) == (
            JobStatus.SUCCEEDED,
            first,
            True,
        )
        assert [job.id for job in store.list_jobs()] == [first + 1, first]


def test_cancel_a_queued_job_at_once_and_flag_a_running_one(tmp_path, model, data, capsys):
    home = tmp_path / "home"
    with open_store(home) as store:
        queued = submit(store, tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out"))
        running = store.create_job("predict", json.dumps({"model": "m"}), status="running")

    assert modelai(home, "jobs", "cancel", str(queued)) == 0
    assert capsys.readouterr().out == f"job {queued}: cancelled before it started\n"
    assert modelai(home, "jobs", "cancel", str(queued)) == 0
    assert capsys.readouterr().out == f"job {queued} had already ended (cancelled); nothing to cancel\n"
    assert modelai(home, "jobs", "cancel", str(running)) == 0
    assert capsys.readouterr().out.startswith(f"job {running}: cancel requested; process ")
    with open_store(home) as store:
        assert store.get_job(queued).status is JobStatus.CANCELLED
        assert store.is_cancel_requested(running) and store.get_job(running).status is JobStatus.RUNNING


@pytest.mark.parametrize("action", ["show", "rerun", "cancel", "resume"])
def test_unknown_job_id_is_one_line_and_exit_2(tmp_path, capsys, action):
    assert modelai(tmp_path / "home", "jobs", action, "99") == EXIT_BAD_INPUT
    captured = capsys.readouterr()
    store = tmp_path / "home" / "jobs.sqlite"
    assert captured.err == f"modelai: error: no job 99 in {store}; `modelai jobs list` shows the ids\n"
    assert captured.out == ""


def test_internal_error_is_one_line_naming_the_job_with_the_traceback(
    tmp_path, model, data, capsys, monkeypatch
):
    home = tmp_path / "home"
    spec = spec_to_dict(tiny_predict_spec(model, data / "images" / "scene0.tif", tmp_path / "out"))
    spec["options"]["tile"] = "large"  # a store edited by hand: no check expects a text here
    with open_store(home) as store:
        edited = store.create_job("predict", json.dumps(spec), status="running")
        store.mark_failed(edited, "edited")

    monkeypatch.delenv("MODELAI_DEBUG", raising=False)
    assert modelai(home, "jobs", "rerun", str(edited)) == EXIT_INTERNAL_ERROR
    error = capsys.readouterr().err
    failed = edited + 1
    assert error.startswith("modelai: internal error: TypeError: ") and error.count("\n") == 1
    assert f"Recorded as job {failed} in {home / 'jobs.sqlite'}: `modelai jobs show {failed}`" in error
    with open_store(home) as store:
        job = store.get_job(failed)
        assert job.status is JobStatus.FAILED and job.error_detail.startswith(
            "Traceback (most recent call last)"
        )

    monkeypatch.setenv("MODELAI_DEBUG", "1")
    with pytest.raises(TypeError):
        modelai(home, "jobs", "rerun", str(edited))
