"""Fixtures shared by the job runner's tests: tiny training data and a model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.training import train
from tests.engine.runner_child import tiny_config, write_training_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_training_data(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def model(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A segmentation model trained for one epoch, for the prediction jobs."""
    return train(tiny_config(data, tmp_path_factory.mktemp("model") / "tiny.safetensors")).model_path
