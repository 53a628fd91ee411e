"""A prediction job that crawls after its first tiles, so that a test can kill it mid-way.

Usage:
    predict_child.py HOME MODEL RASTER OUTPUT_DIR
        runs one prediction job through engine.jobs.runner into the job store of HOME, in tiles of 32
        pixels, printing ``tile N`` after each tile and then sleeping, so that the test knows how far
        it got when it kills the process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from engine.inference.predict import PredictOptions
from engine.jobs.runner import open_store, run
from engine.jobs.specs import PredictSpec
from engine.progress import CancelToken, NullReporter, ProgressEvent

CRAWL_S = 0.5


class Crawling(NullReporter):
    """Tells the parent each finished tile, then waits, widening the window for a kill."""

    def on_progress(self, event: ProgressEvent) -> None:
        print(f"tile {event.done}", flush=True)
        time.sleep(CRAWL_S)


def main() -> None:
    home, model, raster, output = map(Path, sys.argv[1:5])
    options = PredictOptions(tile=32, overlap=0, batch_size=1, device="cpu")
    with open_store(home) as store:
        run(store, PredictSpec(model, [raster], output, options), Crawling(), CancelToken())


if __name__ == "__main__":
    main()
