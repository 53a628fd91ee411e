"""Fixtures shared by every test: offscreen Qt, the real sample rasters, synthetic scenes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from engine.synthetic import Scene, write_scene

SHARED_DATA = (
    Path(os.environ.get("MODELAI_SHARED_DIR", Path(__file__).resolve().parents[2] / "shared")) / "data"
)


@pytest.fixture(scope="session")
def shared_data() -> Callable[[str], Path]:
    """Returns a function giving the path of a real sample raster from ../shared/data.

    Skips the test with a reason where the folder is absent (a user's clone), and fails instead
    when MODELAI_REQUIRE_SHARED_DATA=1 (CI), so the real-data tests can never silently vanish.
    """

    def locate(relative: str) -> Path:
        path = SHARED_DATA / relative
        if path.exists():
            return path
        reason = f"real sample raster {path} is not available (../shared/data is beside the checkout in CI)"
        if os.environ.get("MODELAI_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(reason)
        pytest.skip(reason)

    return locate


@pytest.fixture(scope="session")
def scene_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three training scenes and one held-out scene (``holdout``) of 5-band uint16, seeded."""
    folder = tmp_path_factory.mktemp("scenes")
    for index in range(3):
        write_scene(folder / "train", f"scene{index}", size=(256, 256), seed=100 + index)
    write_scene(folder / "holdout", "holdout", size=(256, 256), seed=999)
    return folder


@pytest.fixture(scope="session")
def anomaly_scene(tmp_path_factory: pytest.TempPathFactory) -> Scene:
    """A held-out scene with foreign objects and their exact map, for anomaly detection tests."""
    folder = tmp_path_factory.mktemp("anomaly")
    return write_scene(folder, "foreign", size=(256, 256), seed=4242, anomalies=12)


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Runs torch on one thread in tests: reproducible numbers, and on a shared 2-core machine
    torch's spinning threads competing with other processes made trainings 8x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own app data folder (job store, models, logs), never the user's own;
    subprocesses inherit it through MODELAI_HOME."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("MODELAI_HOME", str(home))
    return home
