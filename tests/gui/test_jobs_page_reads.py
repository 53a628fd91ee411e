"""The Jobs page reads a newer ModelAI's store: unknown statuses show as stored, with no error."""

from __future__ import annotations

import json

import pytest

from engine.jobs.records import SCHEMA_VERSION
from engine.jobs.runner import open_store
from engine.paths import jobs_db_path
from modelai_desktop.widgets.job_table import COLUMNS
from tests.engine.test_jobs import raw_execute

pytestmark = pytest.mark.gui


def test_a_status_from_a_newer_modelai_is_listed_as_stored(window, run, until, isolated_home, tmp_path):
    with open_store(isolated_home) as store:
        job_id = store.create_job("train", json.dumps({"task": "anomaly"}), status="running")
        store.mark_succeeded(job_id, {})
    raw_execute(
        jobs_db_path(isolated_home),
        f"UPDATE jobs SET status = 'archived' WHERE id = {job_id}",
        f"PRAGMA user_version = {SCHEMA_VERSION + 1}",
    )
    page = window.jobs_page

    async def scenario() -> None:
        await page.reload()
        page.table.select_job(job_id)
        await until(lambda: "archived" in page.details.toPlainText(), "the job's details")

    run(scenario())
    model = page.table.job_model
    assert model.data(model.index(0, COLUMNS.index("Status"))) == "archived"
    assert f"Job {job_id} · train · archived" in page.details.toPlainText()
    assert not page.banner.isVisible()
