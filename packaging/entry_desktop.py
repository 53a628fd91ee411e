"""Entry script of the frozen ``modelai-desktop`` window (PyInstaller runs it as ``__main__``)."""

import multiprocessing
import sys

if __name__ == "__main__":
    # First, before torch and Qt load: a frozen program started as a multiprocessing child (DataLoader
    # workers on Windows) must run the child's work here instead of opening a second window.
    multiprocessing.freeze_support()
    from modelai_desktop.app import main

    sys.exit(main())
