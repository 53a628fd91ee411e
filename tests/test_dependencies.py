"""The declared dependency ranges: no cap below a release the suite passed on, and the linter that
CI runs pinned to the version the code is clean with (docs/dependencies.md)."""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
# The newest releases the suite passed on (docs/dependencies.md lists how each was tested).
TESTED = {"numpy": "2.4.6", "rasterio": "1.4.4", "torch": "2.13.0"}


def requirements(group: str | None = None) -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] if group is None else project["optional-dependencies"][group]
    return {requirement.name.lower(): requirement for requirement in map(Requirement, declared)}


def test_the_ranges_admit_every_tested_release():
    declared = requirements()
    for name, version in TESTED.items():
        assert declared[name].specifier.contains(version), f"{declared[name]} shuts out {name} {version}"


def test_ci_lints_with_the_pinned_ruff():
    [pin] = requirements("dev")["ruff"].specifier
    assert pin.operator == "=="
    assert metadata.version("ruff") == pin.version, "run setup.sh again to install the pinned ruff"
