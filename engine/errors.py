"""The engine's exception hierarchy.

Every message says which file, what is wrong and what to do, because the command line prints it as
is (exit code 2) and the window shows it in a dialog. Cancellation is an exception too, so that a
cancel unwinds through the same cleanup paths as a failure (exit code 130).
"""

from __future__ import annotations


class EngineError(Exception):
    """A problem the user can fix: bad input, a missing file, an impossible setting."""


class RasterError(EngineError):
    """A raster cannot be opened, validated or read."""


class DatasetError(EngineError):
    """Images and masks do not form a usable training set."""


class BandMismatchError(EngineError):
    """A raster's bands do not match what a model or a band selection needs."""


class ModelFileError(EngineError):
    """A model file is missing, damaged, not a model, or from a newer format version."""


class DeviceError(EngineError):
    """The requested compute device is not available."""


class OutputError(EngineError):
    """An output cannot be written: existing file, read-only folder, full disk."""


class JobStoreError(EngineError):
    """The job store cannot be opened or written."""


class JobCancelled(EngineError):
    """The user cancelled the job; partial outputs have been removed."""


class ClusterError(EngineError):
    """A Dask cluster cannot be used: Dask is missing, the scheduler is unreachable, a worker cannot
    see a raster or the output folder, or rasters failed on it."""
