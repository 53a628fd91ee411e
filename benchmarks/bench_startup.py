"""How long the window takes to appear: the first window now, against the main window built after
every import (as ``modelai-desktop`` did before the starting window), measured in turns.

Run with ``QT_QPA_PLATFORM=offscreen`` on a machine without a display. Each round starts fresh
processes; the figures are wall-clock seconds from the package's first import.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The way main() built the window before: every import, then the main window, then show().
IMPORT_THEN_SHOW = """
from modelai_desktop import STARTED_AT
import time
from pathlib import Path
from PySide6.QtWidgets import QApplication
from modelai_desktop.main_window import MainWindow
from modelai_desktop.settings import AppSettings
app = QApplication([])
home = Path({home!r})
window = MainWindow(AppSettings.in_home(home), home / "logs", home)
window.show()
app.processEvents()
print(f"{{time.perf_counter() - STARTED_AT:.3f}}")
"""
PHASES = re.compile(r"Start-up: first window ([\d.]+) s, engine loaded ([\d.]+) s, main window ([\d.]+) s")


def import_then_show(home: Path) -> float:
    code = IMPORT_THEN_SHOW.format(home=str(home))
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(child.stdout)


def app_phases(home: Path, timeout_s: float = 300) -> tuple[float, float, float]:
    """Starts ``modelai-desktop``, waits for its start-up line in the log, then stops it."""
    env = {**os.environ, "MODELAI_HOME": str(home)}
    app = subprocess.Popen([sys.executable, "-m", "modelai_desktop"], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for log in (home / "logs").glob("*.log"):
                found = PHASES.search(log.read_text(errors="replace"))
                if found:
                    first, engine, window = (float(value) for value in found.groups())
                    return first, engine, window
            time.sleep(0.2)
        raise TimeoutError("the window did not log its start-up")
    finally:
        app.terminate()
        app.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    rounds = parser.parse_args().rounds
    before, first, engine, window = [], [], [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            before.append(import_then_show(Path(folder) / "a"))
            phases = app_phases(Path(folder) / "b")
        for series, value in zip((first, engine, window), phases, strict=True):
            series.append(value)
    median = statistics.median
    print(f"rounds: {rounds} (medians, seconds from the package's first import)")
    print(f"before: window after every import      {median(before):6.2f}")
    print(f"after:  starting window                {median(first):6.2f}")
    print(f"        engine loaded (on a thread)    {median(engine):6.2f}")
    print(f"        main window                    {median(window):6.2f}")
    print(f"first window {median(before) / median(first):.1f}x sooner")


if __name__ == "__main__":
    main()
