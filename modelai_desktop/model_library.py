"""Model files as the window lists and manages them: what a listed file holds, which files a folder
offers, and renaming or deleting a model together with its checkpoints folder.

Kept apart from the pages so that the Models, Train, Predict and Label pages name model files the
same way, and so that file operations stay testable without a widget.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QFile

from engine.errors import EngineError, OutputError
from engine.models.file import read_metadata
from engine.models.metadata import ModelMetadata
from engine.training.config import checkpoint_dir_of_model

MODEL_SUFFIX = ".safetensors"
# Opening offers every file too, so a model saved under another suffix can still be chosen;
# saving offers only the model suffix.
OPEN_MODEL_FILTER = "ModelAI models (*.safetensors);;All files (*)"
SAVE_MODEL_FILTER = "ModelAI models (*.safetensors)"


@dataclass(frozen=True)
class ModelEntry:
    """A listed model file: its metadata, or why it cannot be read."""

    path: Path
    metadata: ModelMetadata | None
    error: str = ""


def read_entry(path: Path) -> ModelEntry:
    """Reads one model's metadata (header only); a bad file becomes an entry that says why."""
    try:
        return ModelEntry(path, read_metadata(path))
    except EngineError as exc:
        return ModelEntry(path, None, str(exc))


def model_files(folder: Path, opened: Sequence[Path]) -> list[Path]:
    """The models in ``folder`` (newest first) followed by the opened files that are elsewhere.

    A file that goes while the folder is read (renamed or deleted meanwhile, a dangling link) is
    left out: the list is re-read after every such change, and a listing must not fail on it.
    """
    dated = []
    for path in folder.glob(f"*{MODEL_SUFFIX}"):
        try:
            dated.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    found = [path for _, path in sorted(dated, key=lambda item: item[0], reverse=True)]
    return list(dict.fromkeys([*found, *(path for path in opened if path.is_file())]))


def rename_model_file(path: Path, new_name: str) -> Path:
    """Renames a model file within its folder, with its checkpoints folder; returns the new path.

    The checkpoints move too, so a later run that takes the old name never finds them.

    Raises:
        OutputError: the name is empty or holds a folder, or a file (or checkpoints folder) of
            that name exists.
    """
    stem = new_name.strip().removesuffix(MODEL_SUFFIX)
    if not stem or Path(stem).name != stem:
        raise OutputError(f"{new_name!r} is not a file name; give a name without folders.")
    target = path.with_name(stem + MODEL_SUFFIX)
    checkpoints, target_checkpoints = checkpoint_dir_of_model(path), checkpoint_dir_of_model(target)
    for taken in (target, target_checkpoints):
        if taken.exists():
            raise OutputError(f"{taken} already exists; choose another name.")
    try:
        path.rename(target)
        if checkpoints.is_dir():
            checkpoints.rename(target_checkpoints)
    except OSError as exc:
        raise OutputError(f"Cannot rename {path}: {exc.strerror}.") from exc
    return target


def delete_model_files(path: Path) -> None:
    """Moves a model file and its checkpoints folder to the trash where the system has one, else
    deletes them.

    Raises:
        OutputError: the file or folder cannot be removed.
    """
    for item in (path, checkpoint_dir_of_model(path)):
        if item.exists() and not QFile.moveToTrash(str(item)):
            try:
                if item.is_dir():
                    shutil.rmtree(item)
                else:
                    item.unlink()
            except OSError as exc:
                raise OutputError(f"Cannot delete {item}: {exc.strerror}.") from exc
