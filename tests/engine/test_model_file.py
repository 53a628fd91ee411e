"""Model files and checkpoints: round trips, and a clear ModelFileError for every damaged file."""

from __future__ import annotations

import copy
import functools
import io
import itertools
import json
import pickle  # noqa: TID251 - only to build and prove a hostile pickle; the engine never unpickles
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from engine.errors import ModelFileError, OutputError
from engine.models import build_model
from engine.models.file import (
    library_versions,
    load_checkpoint,
    load_model,
    read_metadata,
    save_checkpoint,
    save_model,
    update_metadata,
)
from engine.models.metadata import FORMAT_VERSION, ClassInfo, ModelMetadata


def segmentation_metadata(**changes: object) -> ModelMetadata:
    metadata = ModelMetadata(
        task="segmentation",
        architecture="unet",
        hyperparameters={"in_channels": 2, "num_classes": 2, "base_width": 4, "depth": 1},
        bands=[3, 1],
        input_dtype="uint16",
        normalization={"method": "standard", "offset": [120.5, 80.0], "scale": [10.0, 7.5], "clip": False},
        patch_size=32,
        pixel_size=[10.0, 10.0],
        crs="EPSG:32618",
        classes=[ClassInfo(0, "background", "#000000"), ClassInfo(1, "water", "#1f77b4")],
        anomaly=None,
        training={"epochs": 1, "history": [{"epoch": 1, "train_loss": 0.5}], "seed": 7},
    )
    return replace(metadata, **changes)


def anomaly_metadata() -> ModelMetadata:
    return segmentation_metadata(
        task="anomaly",
        architecture="conv_autoencoder",
        hyperparameters={"in_channels": 2, "base_width": 4, "depth": 1, "latent_channels": 2},
        classes=[],
        anomaly={"threshold": 1.25, "quantile": 0.99, "error_mean": 0.3},
    )


def trained_model(metadata: ModelMetadata) -> nn.Module:
    """A network with non-default weights and batch-norm statistics, so a round trip proves something."""
    torch.manual_seed(1)
    model = build_model(metadata.architecture, metadata.hyperparameters)
    model.train()
    model(torch.randn(4, 2, 8, 8) * 3 + 1)
    return model.eval()


def metadata_dict(metadata: ModelMetadata | None = None) -> dict:
    return asdict(metadata or segmentation_metadata()) | {"format_version": FORMAT_VERSION, "created": "x"}


def write_safetensors(path: Path, metadata: dict[str, str] | None, tensors: dict | None = None) -> Path:
    tensors = tensors if tensors is not None else trained_model(segmentation_metadata()).state_dict()
    safetensors.torch.save_file(dict(tensors), path, metadata=metadata)
    return path


def file_creating_pickle(target: Path) -> bytes:
    """Pickle opcodes that call ``open(target, "w")`` when unpickled, creating ``target``."""
    name = str(target).encode()
    return (
        pickle.PROTO + b"\x02"
        + pickle.GLOBAL + b"builtins\nopen\n"
        + pickle.BINUNICODE + len(name).to_bytes(4, "little") + name
        + pickle.BINUNICODE + (1).to_bytes(4, "little") + b"w"
        + pickle.TUPLE2 + pickle.REDUCE + pickle.STOP
    )  # fmt: skip


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    metadata = segmentation_metadata()
    return save_model(tmp_path / "water.safetensors", trained_model(metadata), metadata)


@pytest.mark.parametrize("make_metadata", [segmentation_metadata, anomaly_metadata])
def test_round_trip_gives_identical_outputs_and_metadata(tmp_path: Path, make_metadata) -> None:
    metadata = make_metadata()
    model = trained_model(metadata)
    path = save_model(tmp_path / "model.safetensors", model, metadata)
    loaded, loaded_metadata = load_model(path)
    images = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(images), model(images))
    assert not loaded.training
    assert loaded_metadata == replace(metadata, created=loaded_metadata.created)
    assert loaded_metadata.created.startswith("20")
    assert read_metadata(path) == loaded_metadata
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]


def test_channels_last_model_is_saved_contiguous(tmp_path: Path) -> None:
    metadata = segmentation_metadata()
    model = trained_model(metadata).to(memory_format=torch.channels_last)
    path = save_model(tmp_path / "model.safetensors", model, metadata)
    loaded, _ = load_model(path)
    images = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_file_is_plain_safetensors_with_metadata_as_json(model_path: Path) -> None:
    with safetensors.safe_open(model_path, "pt") as file:
        stored = json.loads(file.metadata()["modelai"])
    assert stored["bands"] == [3, 1]
    assert stored["format_version"] == FORMAT_VERSION


def test_invalid_metadata_is_refused_before_writing_and_the_old_file_stays(model_path: Path) -> None:
    before = model_path.read_bytes()
    bad = segmentation_metadata(bands=[1, 2, 3])
    with pytest.raises(ModelFileError, match="takes 2 bands, but 3 are listed"):
        save_model(model_path, trained_model(segmentation_metadata()), bad)
    with pytest.raises(ModelFileError, match="weights do not fit"):
        save_model(model_path, trained_model(anomaly_metadata()), segmentation_metadata())
    assert model_path.read_bytes() == before
    assert [p.name for p in model_path.parent.iterdir()] == [model_path.name]


def test_saved_file_has_the_permissions_of_any_new_file(model_path: Path) -> None:
    reference = model_path.with_name("reference.txt")
    reference.write_bytes(b"")
    assert model_path.stat().st_mode == reference.stat().st_mode


def test_saving_into_a_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    metadata = segmentation_metadata()
    with pytest.raises(OutputError, match=r"Cannot write .*missing"):
        save_model(tmp_path / "missing" / "m.safetensors", trained_model(metadata), metadata)


def test_update_metadata_changes_only_the_given_fields(model_path: Path) -> None:
    model, before = load_model(model_path)
    classes = [ClassInfo(0, "land", "#00ff00"), ClassInfo(1, "lake", "#0000ff")]
    updated = update_metadata(model_path, classes=classes, training={"epochs": 2})
    assert updated == replace(before, classes=classes, training={"epochs": 2})
    assert read_metadata(model_path) == updated
    reloaded, _ = load_model(model_path)
    images = torch.randn(1, 2, 8, 8)
    with torch.no_grad():
        assert torch.equal(reloaded(images), model(images))


def test_update_metadata_refuses_bad_changes_and_keeps_the_file(model_path: Path) -> None:
    before = model_path.read_bytes()
    with pytest.raises(ModelFileError, match="field 'classes' must be"):
        update_metadata(model_path, classes=[ClassInfo(0, "land", "green")])
    with pytest.raises(ModelFileError, match="weights do not fit"):
        update_metadata(model_path, hyperparameters={"in_channels": 2, "num_classes": 5})
    with pytest.raises(TypeError, match=r"no field.*colour"):
        update_metadata(model_path, colour="#ffffff")
    assert model_path.read_bytes() == before


def weights_of(metadata: ModelMetadata) -> dict[str, torch.Tensor]:
    return trained_model(metadata).state_dict()


BAD_MODEL_FILES = {
    "missing": (lambda p: None, "does not exist; check the path"),
    "zero bytes": (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
    "four bytes": (lambda p: p.write_bytes(b"\x10\x00\x00\x00"), "only 4 bytes, it is truncated"),
    "png renamed": (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100)), "is a PNG image"),
    "tiff renamed": (lambda p: p.write_bytes(b"II*\x00" + bytes(100)), "is a TIFF image"),
    "torch zip": (lambda p: torch.save({"w": torch.ones(2)}, p), "is a zip archive"),
    "pickle": (lambda p: p.write_bytes(pickle.dumps({"w": 1}, protocol=4)), "is a Python pickle"),
    "20 GB header length": (lambda p: p.write_bytes((20 << 30).to_bytes(8, "little") + b"{}"), "no header"),
    "header past the end": (
        lambda p: p.write_bytes((500).to_bytes(8, "little") + b"{}"),
        "truncated: header",
    ),
    "header not json": (lambda p: p.write_bytes((4).to_bytes(8, "little") + b"{\xff\xfe["), "not JSON"),
    "header a list": (lambda p: p.write_bytes((2).to_bytes(8, "little") + b"[]"), "not a JSON object"),
    "no modelai metadata": (
        lambda p: write_safetensors(p, {"format": "pt"}),
        "not a ModelAI model: it has no",
    ),
    "no metadata at all": (lambda p: write_safetensors(p, None), "not a ModelAI model: it has no"),
    "metadata not json": (lambda p: write_safetensors(p, {"modelai": "{oops"}), "metadata is not valid JSON"),
    "metadata a list": (
        lambda p: write_safetensors(p, {"modelai": "[1, 2]"}),
        "metadata is not a JSON object",
    ),
    "metadata field missing": (
        lambda p: write_safetensors(p, {"modelai": json.dumps(metadata_dict() | {"bands": None})}),
        "field 'bands' must be a non-empty list",
    ),
    "newer format": (
        lambda p: write_safetensors(p, {"modelai": json.dumps(metadata_dict() | {"format_version": 99})}),
        "made by a newer ModelAI.*Update the app",
    ),
    "unknown architecture": (
        lambda p: write_safetensors(p, {"modelai": json.dumps(metadata_dict() | {"architecture": "vit"})}),
        "'vit', which this ModelAI does not know.*update the app",
    ),
    "bad hyper-parameters": (
        lambda p: write_safetensors(
            p, {"modelai": json.dumps(metadata_dict() | {"hyperparameters": {"in_channels": 2}})}
        ),
        "Missing hyper-parameter.*num_classes",
    ),
    "weights of the wrong shape": (
        lambda p: write_safetensors(
            p,
            {"modelai": segmentation_metadata().to_json()},
            weights_of(
                segmentation_metadata(hyperparameters={"in_channels": 2, "num_classes": 3, "depth": 1})
            ),
        ),
        "weights do not fit a unet network.*size mismatch",
    ),
    "weights missing": (
        lambda p: write_safetensors(
            p,
            {"modelai": segmentation_metadata().to_json()},
            {k: v for k, v in weights_of(segmentation_metadata()).items() if not k.startswith("head")},
        ),
        "weights do not fit a unet network.*Missing key",
    ),
}


@pytest.mark.parametrize("make", BAD_MODEL_FILES.values(), ids=BAD_MODEL_FILES.keys())
def test_bad_model_file_gets_a_clear_error_naming_it(tmp_path: Path, make) -> None:
    write, message = make
    path = tmp_path / "model.safetensors"
    write(path)
    with pytest.raises(ModelFileError, match=message) as error:
        load_model(path)
    assert str(path) in str(error.value)


def test_truncated_model_file_is_refused(model_path: Path) -> None:
    data = model_path.read_bytes()
    for keep in (len(data) - 1, len(data) // 2, 40):
        model_path.write_bytes(data[:keep])
        with pytest.raises(ModelFileError, match="truncated"):
            read_metadata(model_path)


def test_extra_bytes_after_the_weights_are_refused(model_path: Path) -> None:
    model_path.write_bytes(model_path.read_bytes() + b"junk")
    with pytest.raises(ModelFileError, match="4 bytes more than its weights need"):
        load_model(model_path)


def test_header_length_that_looks_like_a_pickle_opcode_is_still_read(tmp_path: Path) -> None:
    # A header of 0x0480 bytes starts the file with 0x80 0x04, the opening bytes of a pickle too.
    path = tmp_path / "model.safetensors"
    for padding in range(1200):
        note = json.dumps(metadata_dict() | {"training": {"note": "x" * padding}})
        write_safetensors(path, {"modelai": note}, {"w": torch.zeros(1)})
        if path.read_bytes()[:2] == b"\x80\x04":
            break
    assert path.read_bytes()[:2] == b"\x80\x04"
    assert read_metadata(path).training["note"] == "x" * padding


def test_a_folder_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="is a folder"):
        read_metadata(tmp_path)


def test_hostile_pickle_is_refused_without_running_it(tmp_path: Path) -> None:
    proof = tmp_path / "proof.txt"
    pickle.loads(file_creating_pickle(proof)).close()  # the payload really creates a file when unpickled
    assert proof.exists()
    created = tmp_path / "created-by-payload.txt"
    path = tmp_path / "model.safetensors"
    path.write_bytes(file_creating_pickle(created))
    with pytest.raises(ModelFileError, match="Python pickle"):
        load_model(path)
    with pytest.raises(ModelFileError, match="damaged or not a ModelAI checkpoint"):
        load_checkpoint(path)
    assert not created.exists()


def test_hostile_pickle_inside_a_torch_archive_is_refused(tmp_path: Path) -> None:
    created = tmp_path / "created-by-payload.txt"
    genuine = io.BytesIO()
    torch.save({"epoch": 1}, genuine)
    hostile = tmp_path / "hostile.ckpt"
    with zipfile.ZipFile(genuine) as source, zipfile.ZipFile(hostile, "w") as target:
        for entry in source.infolist():
            data = source.read(entry)
            target.writestr(
                entry, file_creating_pickle(created) if entry.filename.endswith("data.pkl") else data
            )
    with pytest.raises(ModelFileError, match="UnpicklingError"):
        load_checkpoint(hostile)
    assert not created.exists()


def json_values() -> st.SearchStrategy:
    scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


DELETE = object()
EDIT_PATHS = [
    *[(name,) for name in [*metadata_dict(), "unexpected"]],
    *[
        ("hyperparameters", key)
        for key in ("in_channels", "num_classes", "depth", "latent_channels", "dropout")
    ],
    *[("classes", 0, key) for key in ("id", "name", "color", "extra")],
    ("anomaly", "threshold"),
    ("bands", 0),
    ("pixel_size", 1),
]
EDGE_VALUES = [10**400, -1, 0, 2.5, True, float("nan"), float("inf"), "", "unet", [], {}, [1], None, DELETE]


def edited(data: dict, path: tuple, value: object) -> dict:
    """A copy of ``data`` with the value at ``path`` replaced or deleted; unchanged if the path is absent."""
    data = copy.deepcopy(data)
    *parents, last = path
    try:
        container = functools.reduce(lambda node, key: node[key], parents, data)
        if value is DELETE:
            del container[last]
        else:
            container[last] = value
    except (KeyError, IndexError, TypeError):
        pass
    return data


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from([metadata_dict(), metadata_dict(anomaly_metadata())]),
    edits=st.lists(
        st.tuples(st.sampled_from(EDIT_PATHS), json_values() | st.sampled_from(EDGE_VALUES)), max_size=3
    ),
    whole=st.none() | json_values(),
)
def test_any_json_loads_or_raises_model_file_error(base: dict, edits: list, whole: object) -> None:
    data = functools.reduce(lambda d, edit: edited(d, *edit), edits, base) if whole is None else whole
    assert_loads_or_raises_model_file_error(data)


def test_every_edge_value_in_every_field_loads_or_raises_model_file_error() -> None:
    for base in (metadata_dict(), metadata_dict(anomaly_metadata())):
        for path, value in itertools.product(EDIT_PATHS, EDGE_VALUES):
            assert_loads_or_raises_model_file_error(edited(base, path, value))


def assert_loads_or_raises_model_file_error(data: object) -> None:
    try:
        metadata = ModelMetadata.from_json(json.dumps(data), Path("random.safetensors"))
    except ModelFileError as error:
        assert "random.safetensors" in str(error)
    else:
        assert ModelMetadata.from_json(metadata.to_json(), Path("again")).to_json() == metadata.to_json()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    head=st.binary(max_size=40)
    | st.builds(
        lambda n, rest: n.to_bytes(8, "little") + rest, st.integers(0, 2**64 - 1), st.binary(max_size=40)
    )
    | st.builds(lambda v: (t := json.dumps(v).encode()) and len(t).to_bytes(8, "little") + t, json_values())
)
def test_random_bytes_raise_model_file_error(tmp_path: Path, head: bytes) -> None:
    path = tmp_path / "random.safetensors"
    path.write_bytes(head)
    with pytest.raises(ModelFileError):
        read_metadata(path)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model = trained_model(segmentation_metadata())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 2, 8, 8)).sum().backward()
    optimizer.step()
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": {"last_epoch": 3, "base_lrs": [1e-3]},
        "epoch": 3,
        "history": [{"epoch": 1, "train_loss": 0.9, "val_iou": None}],
        "rng": {"torch": torch.get_rng_state(), "numpy": torch.tensor([1, 2, 3], dtype=torch.int64)},
        "metadata": segmentation_metadata().to_json(),
    }
    path = save_checkpoint(tmp_path / "last.ckpt", state)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["history"] == state["history"]
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])
    assert all(torch.equal(loaded["model"][k], v) for k, v in state["model"].items())
    resumed = torch.optim.AdamW(model.parameters(), lr=1e-3)
    resumed.load_state_dict(loaded["optimizer"])
    assert resumed.state_dict()["state"][0]["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.unlink(), "does not exist"),
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_bytes(p.read_bytes()[:200]), "damaged or not a ModelAI checkpoint"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" * 8), "damaged or not a ModelAI checkpoint"),
        (lambda p: torch.save([1, 2], p), "holds a list, not a training state"),
    ],
    ids=["missing", "empty", "truncated", "png", "not a dict"],
)
def test_damaged_checkpoint_gets_a_clear_error(tmp_path: Path, damage, message: str) -> None:
    path = save_checkpoint(tmp_path / "last.ckpt", {"epoch": 1, "weights": torch.ones(100)})
    damage(path)
    with pytest.raises(ModelFileError, match=message):
        load_checkpoint(path)


def test_library_versions_name_what_shapes_results() -> None:
    versions = library_versions()
    assert {"torch", "numpy", "rasterio", "safetensors", "python", "engine"} <= set(versions)
    assert versions["torch"] == torch.__version__
    assert all(isinstance(v, str) and v for v in versions.values())
