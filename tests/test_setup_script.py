"""setup.sh chooses the CPU build of torch on Linux (PyPI's Linux wheel is the CUDA build), takes it
from a local wheel when pip finds one and from PyTorch's CPU index otherwise, and lets
TORCH_INDEX_URL choose another build. Run against a stand-in for the venv's Python that records
what pip was asked to do; CI runs the real setup.sh on a fresh machine."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(platform.system() != "Linux", reason="the CPU/CUDA choice is Linux's")

# Answers like pip: "+cpu" is not found where pip looks unless LOCAL_CPU_WHEEL=1 (a wheel folder).
RECORDING_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$PIP_LOG"
case "$*" in
  *"--index-url"*) exit 0 ;;
  *"torch=="*"+cpu"*) [ "$LOCAL_CPU_WHEEL" = 1 ] ;;
esac
"""


def run_setup(tmp_path: Path, **environment: str) -> list[str]:
    """Runs a copy of setup.sh whose .venv/bin/python records its arguments; returns the pip calls."""
    (tmp_path / "setup.sh").write_text((ROOT / "setup.sh").read_text())
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(RECORDING_PYTHON)
    python.chmod(0o755)
    log = tmp_path / "pip.log"
    env = {name: value for name, value in os.environ.items() if name != "TORCH_INDEX_URL"}
    env.update(PYTHON=sys.executable, PIP_LOG=str(log), **environment)
    done = subprocess.run(["bash", str(tmp_path / "setup.sh")], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return [line for line in log.read_text().splitlines() if "torch==" in line]


def test_a_local_cpu_wheel_is_used_without_asking_pytorchs_index(tmp_path: Path):
    assert run_setup(tmp_path, LOCAL_CPU_WHEEL="1") == [f"-m pip install -q {TORCH}+cpu"]


def test_without_a_local_wheel_the_cpu_build_comes_from_pytorchs_cpu_index(tmp_path: Path):
    assert run_setup(tmp_path, LOCAL_CPU_WHEEL="0") == [
        f"-m pip install -q {TORCH}+cpu",
        f"-m pip install -q {TORCH}+cpu --index-url {CPU_INDEX}",
    ]


def test_torch_index_url_chooses_another_build(tmp_path: Path):
    cuda = "https://download.pytorch.org/whl/cu126"
    calls = run_setup(tmp_path, LOCAL_CPU_WHEEL="1", TORCH_INDEX_URL=cuda)
    assert calls == [f"-m pip install -q {TORCH} --index-url {cuda}"]
