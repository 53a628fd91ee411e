"""Where ModelAI keeps its files: one data folder ("home") with models, outputs, logs and the job store.

The window and the command line resolve the same folder the same way (``--home``, then the
``MODELAI_HOME`` variable, then the platform's per-user data folder), so a job started in one shows
up in the other.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from engine.errors import JobStoreError

HOME_ENV_VAR = "MODELAI_HOME"
HOME_SUBFOLDERS = ("models", "outputs", "logs", "checkpoints")
JOBS_DB_NAME = "jobs.sqlite"


def app_home(override: str | Path | None = None) -> Path:
    """Return the data folder, creating it and its subfolders so later writes cannot fail on a missing folder.

    Args:
        override: a folder chosen by the user (``--home``); wins over ``MODELAI_HOME`` and the default.

    Raises:
        JobStoreError: the folder cannot be created or is not writable; the message says how to
            choose another one.
    """
    env_home = os.environ.get(HOME_ENV_VAR, "")
    if override:
        home, origin = Path(override), "given with --home"
    elif env_home:
        home, origin = Path(env_home), f"set by {HOME_ENV_VAR}"
    else:
        home, origin = Path(platformdirs.user_data_dir("ModelAI", "ModelAI")), "the default data folder"
    home = home.expanduser().resolve()
    what_to_do = f"choose a writable folder with --home or the {HOME_ENV_VAR} environment variable"
    try:
        for subfolder in HOME_SUBFOLDERS:
            (home / subfolder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobStoreError(
            f"cannot create the ModelAI data folder {home} ({origin}): {exc.strerror}; {what_to_do}"
        ) from exc
    if not os.access(home, os.W_OK):
        raise JobStoreError(f"the ModelAI data folder {home} ({origin}) is read-only; {what_to_do}")
    return home


def jobs_db_path(home: Path) -> Path:
    """Return the job store's file inside a data folder returned by :func:`app_home`."""
    return home / JOBS_DB_NAME
