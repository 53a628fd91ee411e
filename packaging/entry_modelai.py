"""Entry script of the frozen ``modelai`` command (PyInstaller runs it as ``__main__``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First, before torch loads: a frozen program started as a multiprocessing child (DataLoader
    # workers on Windows) must run the child's work here instead of the command line.
    multiprocessing.freeze_support()
    from engine.cli import main

    sys.exit(main())
