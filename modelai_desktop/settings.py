"""The window's remembered state (recent files, the last session's rasters, the last training's
settings, geometry, last folder), versioned.

Settings live in an INI file inside the app's data folder, so ``MODELAI_HOME`` isolates a test run
or a second installation completely. The file carries a ``settings_version``: values are checked
on read, never trusted, and a file written by a newer app is read but not overwritten, so going
back to an older version does not destroy the newer one's settings.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QSettings

log = logging.getLogger(__name__)

SETTINGS_VERSION = 1
SETTINGS_FILE_NAME = "desktop-settings.ini"
MAX_RECENT_FILES = 10
VERSION_KEY = "settings_version"
RECENT_FILES_KEY = "files/recent"
LAST_FOLDER_KEY = "files/last_folder"
GEOMETRY_KEY = "window/geometry"
SESSION_RASTERS_KEY = "files/session_rasters"
LAST_TRAINING_KEY = "train/last_config"


class AppSettings:
    """Typed access to one settings file; every getter returns a safe default on bad values."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._store = QSettings(str(path), QSettings.Format.IniFormat)
        stored = _as_int(self._store.value(VERSION_KEY))
        self.read_only = stored is not None and stored > SETTINGS_VERSION
        if self.read_only:
            log.warning(
                "%s was written by a newer ModelAI Desktop (settings version %s, this one knows %s); "
                "it is read but not changed.",
                path,
                stored,
                SETTINGS_VERSION,
            )
        elif stored != SETTINGS_VERSION:
            self._set(VERSION_KEY, SETTINGS_VERSION)

    @classmethod
    def in_home(cls, home: Path) -> AppSettings:
        """The settings file of the app data folder ``home``."""
        return cls(home / SETTINGS_FILE_NAME)

    def recent_files(self) -> list[Path]:
        """Rasters opened before, most recent first (files that no longer exist included)."""
        value = self._store.value(RECENT_FILES_KEY)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [Path(item) for item in items if isinstance(item, str) and item][:MAX_RECENT_FILES]

    def add_recent_files(self, paths: list[Path]) -> None:
        """Puts paths at the head of the recent files, without duplicates, keeping the newest ten."""
        merged = [str(path) for path in paths] + [str(path) for path in self.recent_files()]
        self._set(RECENT_FILES_KEY, list(dict.fromkeys(merged))[:MAX_RECENT_FILES])

    def clear_recent_files(self) -> None:
        self._set(RECENT_FILES_KEY, [])

    def last_folder(self) -> Path | None:
        """The folder the last Open… dialog was in, if it still exists."""
        value = self._store.value(LAST_FOLDER_KEY)
        folder = Path(value) if isinstance(value, str) and value else None
        return folder if folder and folder.is_dir() else None

    def set_last_folder(self, folder: Path) -> None:
        self._set(LAST_FOLDER_KEY, str(folder))

    def session_rasters(self) -> list[Path]:
        """The rasters listed when the window last closed that still exist, to list them again."""
        value = self._store.value(SESSION_RASTERS_KEY)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [Path(item) for item in items if isinstance(item, str) and item and Path(item).is_file()]

    def set_session_rasters(self, paths: list[Path]) -> None:
        self._set(SESSION_RASTERS_KEY, [str(path) for path in paths])

    def last_training(self) -> dict[str, Any] | None:
        """The settings of the last training started (a TrainConfig as a dictionary), if readable."""
        value = self._store.value(LAST_TRAINING_KEY)
        try:
            config = json.loads(value) if isinstance(value, str) else None
        except ValueError:
            return None
        return config if isinstance(config, dict) else None

    def set_last_training(self, config: dict[str, Any]) -> None:
        self._set(LAST_TRAINING_KEY, json.dumps(config))

    def window_geometry(self) -> QByteArray | None:
        value = self._store.value(GEOMETRY_KEY)
        return value if isinstance(value, QByteArray) and not value.isEmpty() else None

    def set_window_geometry(self, geometry: QByteArray) -> None:
        self._set(GEOMETRY_KEY, geometry)

    def sync(self) -> None:
        """Writes pending changes to disk now (QSettings otherwise writes them later)."""
        self._store.sync()

    def _set(self, key: str, value: Any) -> None:
        if not self.read_only:
            self._store.setValue(key, value)


def _as_int(value: object) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
