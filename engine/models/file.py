"""Model files: one ``.safetensors`` file holding the weights and everything needed to use them.

The safetensors header's metadata maps ``"modelai"`` to JSON text of :class:`ModelMetadata`: the
architecture and hyper-parameters to rebuild the network, the input bands and their normalisation,
the patch size, class names and colours, the anomaly threshold and a training summary. Loading parses
JSON and raw tensors only, never a pickle, so opening a model received from someone cannot run code.
Every way a file can be wrong (missing, empty, truncated, another kind of file, a safetensors file of
another program, edited metadata, a newer format) becomes a :class:`ModelFileError` that says so.

Training checkpoints (to resume a run) are ``torch.save`` archives read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import os
import platform
import uuid
from collections.abc import Callable
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import safetensors
import torch
from safetensors import SafetensorError
from safetensors.torch import load as tensors_from_bytes
from safetensors.torch import save as tensors_to_bytes
from torch import nn

import engine
from engine.errors import ModelFileError, OutputError
from engine.models import build_model
from engine.models.metadata import (
    FORMAT_VERSION,
    ModelMetadata,
    invalid_model,
    is_int,
    repeated_class_names,
)

METADATA_KEY = "modelai"
# safetensors itself refuses headers over 100 MB; a larger length field means another kind of file.
MAX_HEADER_BYTES = 100_000_000
# Leading bytes of files that people mistake for models, to name what they picked instead.
_KNOWN_MAGIC = {
    b"\x89PNG": "a PNG image",
    b"II*\x00": "a TIFF image (a raster, not a model)",
    b"MM\x00*": "a TIFF image (a raster, not a model)",
    b"PK\x03\x04": "a zip archive (such as a PyTorch .pt file or a ModelAI training checkpoint)",
}


def save_model(path: str | os.PathLike[str], model: nn.Module, metadata: ModelMetadata) -> Path:
    """Write ``model``'s weights and ``metadata`` to ``path`` atomically; return the path.

    The file is checked before it is written (metadata valid, weights fitting the architecture), so
    a model file on disk can always be loaded. An existing file is replaced only once the new one is
    complete, so an interrupted save leaves the old model intact.

    Raises:
        ModelFileError: the metadata is invalid or does not describe ``model``.
        OutputError: the file cannot be written.
    """
    path = Path(path)
    created = metadata.created or datetime.now(UTC).isoformat(timespec="seconds")
    metadata = replace(metadata, format_version=FORMAT_VERSION, created=created)
    text = metadata.to_json()
    ModelMetadata.from_json(text, path)
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in model.state_dict().items()}
    _model_with_weights(metadata, tensors, path)
    data = tensors_to_bytes(tensors, metadata={METADATA_KEY: text})
    _write_atomically(path, lambda file: file.write(data))
    return path


def read_metadata(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read a model's metadata from the file header without reading the weights.

    Fast enough to list a folder of models; it also checks that the weights are all there.
    """
    return _parse_header(Path(path))[0]


def check_model_file(path: str | os.PathLike[str]) -> ModelMetadata:
    """Read a model's metadata and check that its weights fit the network, still from the header only.

    What `read_metadata` does, plus the names and shapes of the weights against the network the
    metadata describes, so a damaged model is refused before a job is queued with it.
    """
    path = Path(path)
    metadata, header = _parse_header(path)
    _check_weight_shapes(metadata, header, path)
    return metadata


def _parse_header(path: Path) -> tuple[ModelMetadata, dict[str, Any]]:
    header = _read_header(path)
    return ModelMetadata.from_json(header["__metadata__"][METADATA_KEY], path), header


def load_model(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelMetadata]:
    """Rebuild a trained network from its file, on ``device`` and in eval mode.

    Raises:
        ModelFileError: the file is missing, damaged, not a ModelAI model, from a newer format, or its
            weights do not fit its architecture.
    """
    path = Path(path)
    metadata = read_metadata(path)
    model = _model_with_weights(metadata, _read_tensors(path), path)
    return model.to(device).eval(), metadata


def update_metadata(path: str | os.PathLike[str], **changes: Any) -> ModelMetadata:
    """Rewrite a model file atomically with some metadata fields changed (e.g. class names or colours).

    Raises:
        TypeError: a change names no metadata field.
        ModelFileError: the file cannot be loaded, two classes would share a name, or the changed
            metadata is invalid or no longer fits the weights; the file is then left as it was.
    """
    unknown = set(changes) - {f.name for f in fields(ModelMetadata)}
    if unknown:
        raise TypeError(f"ModelMetadata has no field(s) {', '.join(sorted(unknown))}")
    repeated = repeated_class_names(info.name for info in changes.get("classes", []))
    if repeated:
        raise ModelFileError(
            f"{path}: {', '.join(map(repr, repeated))} would name more than one class; "
            "give each class its own name. The file is unchanged."
        )
    model, metadata = load_model(path)
    save_model(path, model, replace(metadata, **changes))
    return read_metadata(path)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model's results, recorded in its training summary."""
    import rasterio  # GDAL loads slowly and, in this module, only this summary needs it

    return {
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "none",
        "numpy": np.__version__,
        "rasterio": rasterio.__version__,
        "safetensors": safetensors.__version__,
        "python": platform.python_version(),
        "engine": engine.__version__,
    }


def _file_size(path: Path, what: str) -> int:
    """Size of a file that should hold a model or checkpoint, refusing missing, folder and empty ones."""
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise ModelFileError(f"The {what} file {path} does not exist; check the path.") from exc
    except OSError as exc:
        raise ModelFileError(f"Cannot read the {what} file {path}: {exc.strerror}.") from exc
    if path.is_dir():
        raise ModelFileError(f"{path} is a folder, not a {what} file; choose the file inside it.")
    if size == 0:
        raise ModelFileError(f"{path} is empty (0 bytes): saving or copying it was interrupted.")
    return size


def _read_header(path: Path) -> dict[str, Any]:
    """Parse and check the safetensors header ourselves: a bogus length must not make us read gigabytes."""
    size = _file_size(path, "model")
    try:
        with path.open("rb") as file:
            prefix = file.read(8)
            header_length = int.from_bytes(prefix, "little")
            plausible = size >= 8 and 2 <= header_length <= min(MAX_HEADER_BYTES, size - 8)
            raw = file.read(header_length) if plausible else b""
    except OSError as exc:
        raise ModelFileError(f"Cannot read the model file {path}: {exc.strerror}.") from exc
    if not raw.startswith(b"{"):
        raise _not_safetensors(path, prefix, size, plausible)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise invalid_model(path, "it is not a safetensors file (its header is not JSON text)") from exc
    if not isinstance(header, dict):
        raise invalid_model(path, "it is not a safetensors file (its header is not a JSON object)")
    _check_weights_extent(header, size - 8 - header_length, path)
    metadata = header.get("__metadata__")
    if not (isinstance(metadata, dict) and isinstance(metadata.get(METADATA_KEY), str)):
        raise ModelFileError(
            f"{path} is a safetensors file but not a ModelAI model: it has no {METADATA_KEY!r} metadata. "
            "Use a model trained by ModelAI."
        )
    return header


def _not_safetensors(path: Path, prefix: bytes, size: int, plausible_length: bool) -> ModelFileError:
    """Say what a file that does not start like safetensors is, as precisely as its first bytes allow."""
    for magic, kind in _KNOWN_MAGIC.items():
        if prefix.startswith(magic):
            return ModelFileError(
                f"{path} is {kind}, not a ModelAI model; choose a .safetensors model saved by ModelAI."
            )
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return ModelFileError(
            f"{path} is a Python pickle (such as a PyTorch .pt/.pth file), not a ModelAI model. "
            "ModelAI never opens pickles, because opening one can run any code it contains."
        )
    if size < 8:
        return invalid_model(path, f"it has only {size} bytes, it is truncated")
    header_length = int.from_bytes(prefix, "little")
    if not plausible_length and 2 <= header_length <= MAX_HEADER_BYTES:
        return invalid_model(path, f"it is truncated: header of {header_length} bytes, {size - 8} left")
    if plausible_length:
        return invalid_model(path, "it is not a safetensors file (its header is not a JSON object)")
    return invalid_model(path, "it is not a safetensors file (its first 8 bytes are no header length)")


def _check_weights_extent(header: dict[str, Any], data_bytes: int, path: Path) -> None:
    """Check that the bytes after the header are exactly the weights the header lists."""
    entries = [entry for name, entry in header.items() if name != "__metadata__"]
    offsets = [entry.get("data_offsets") if isinstance(entry, dict) else None for entry in entries]
    if not all(isinstance(o, list) and len(o) == 2 and all(is_int(v) for v in o) for o in offsets):
        raise invalid_model(path, "its table of weights is damaged")
    needed = max((end for _, end in offsets), default=0)
    if needed > data_bytes:
        raise invalid_model(
            path, f"it is truncated: the weights need {needed} bytes, only {data_bytes} are there"
        )
    if needed < data_bytes:
        raise invalid_model(path, f"it has {data_bytes - needed} bytes more than its weights need")


def _check_weight_shapes(metadata: ModelMetadata, header: dict[str, Any], path: Path) -> None:
    """Compare the weights listed in the header with those of the network, built without memory."""
    with torch.device("meta"):
        network = _build(metadata, path)
    needed = {name: list(tensor.shape) for name, tensor in network.state_dict().items()}
    stored = {name: entry.get("shape") for name, entry in header.items() if name != "__metadata__"}
    problems = [
        f"size mismatch for {name}: {stored[name]} in the file, {shape} needed"
        for name, shape in needed.items()
        if name in stored and stored[name] != shape
    ][:3]
    for label, names in (("Missing", needed.keys() - stored), ("Unexpected", stored.keys() - needed)):
        if names:
            problems.append(f"{label} key(s): {', '.join(sorted(names)[:5])}")
    if problems:
        fit = f"its weights do not fit a {metadata.architecture} network"
        raise invalid_model(path, f"{fit} ({'; '.join(problems)})")


def _build(metadata: ModelMetadata, path: Path) -> nn.Module:
    """The untrained network the metadata names, or a ModelFileError naming the file."""
    try:
        return build_model(metadata.architecture, metadata.hyperparameters)
    except ModelFileError as exc:
        raise invalid_model(path, str(exc).rstrip(".")) from exc


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read all weights into memory; no memory map is left open, so the file can be replaced."""
    try:
        return tensors_from_bytes(path.read_bytes())
    except SafetensorError as exc:
        raise invalid_model(path, f"its weights are damaged ({exc})") from exc
    except OSError as exc:
        raise ModelFileError(f"Cannot read the model file {path}: {exc.strerror}.") from exc


def _model_with_weights(metadata: ModelMetadata, tensors: dict[str, torch.Tensor], path: Path) -> nn.Module:
    """Build the network the metadata names and load ``tensors`` into it strictly."""
    model = _build(metadata, path)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        problem = f"its weights do not fit a {metadata.architecture} network ({detail[:300]})"
        raise invalid_model(path, problem) from exc
    return model


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a training checkpoint atomically; ``state`` holds only tensors, numbers, strings and containers.

    Raises:
        OutputError: the file cannot be written.
    """
    path = Path(path)
    _write_atomically(path, lambda file: torch.save(state, file))
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a training checkpoint onto the CPU without unpickling arbitrary objects.

    Raises:
        ModelFileError: the file is missing, empty, damaged, or holds something else than plain state.
    """
    path = Path(path)
    _file_size(path, "checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    # Damaged or hostile files surface as RuntimeError, EOFError, UnpicklingError (from a module the
    # engine must not import) and more; all of them mean the same thing to the user.
    except Exception as exc:
        detail = " ".join(str(exc).split())[:200]
        raise ModelFileError(
            f"The checkpoint {path} is damaged or not a ModelAI checkpoint ({type(exc).__name__}: {detail}). "
            "Start the training again without resuming."
        ) from exc
    if not isinstance(state, dict):
        raise ModelFileError(
            f"The checkpoint {path} holds a {type(state).__name__}, not a training state. "
            "Start the training again without resuming."
        )
    return state


def _write_atomically(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``.

    Readers see the old file or the complete new one, never a half-written one.
    """
    # A unique name opened exclusively, not mkstemp, so the file gets the usual permissions (umask).
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        file = temporary.open("xb")
    except OSError as exc:
        raise OutputError(
            f"Cannot write {path}: {exc.strerror}. Choose an existing, writable folder."
        ) from exc
    try:
        with file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        temporary.replace(path)
    except BaseException as exc:
        temporary.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputError(
                f"Cannot write {path}: {exc.strerror}. Free disk space or pick another folder."
            ) from exc
        raise
