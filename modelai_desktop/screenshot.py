"""``modelai-desktop --screenshot OUT.png``: open the window, load files, wait for the preview, save a PNG.

Used for the documentation's pictures and by the tests as an end-to-end check of the whole window
(startup, loading, preview drawing) without a display: it works under ``QT_QPA_PLATFORM=offscreen``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from modelai_desktop.main_window import MainWindow
from modelai_desktop.widgets.display_controls import DisplayChoice

log = logging.getLogger(__name__)

SETTLE_S = 0.2


async def capture_window(
    window: MainWindow,
    out: Path,
    page: str,
    files: Sequence[Path],
    bands: Sequence[int] | None = None,
    labels: tuple[Path, str | None, str | None] | None = None,
) -> int:
    """Shows the window, opens ``files`` as a drop would (the first raster is previewed, a model goes
    to the Predict page), shows ``page`` and saves a grab.

    Args:
        bands: one band, or three for red, green and blue, to display for the previewed raster.
        labels: labels to show on the Label page over the first raster: a mask GeoTIFF or a vector
            file, with the vector file's layer and class field (None: the only layer, one class).

    Returns:
        0 when the PNG was written; 2 when the bands do not exist or the file cannot be written.
    """
    window.show()
    window.open_paths(files)
    await window.tasks.wait_idle()
    if labels is not None and files:
        await window.label_page.open_raster(files[0], *labels)
    if bands and not _show_bands(window, bands):
        return 2
    window.show_page(page)
    await window.tasks.wait_idle()
    await asyncio.sleep(SETTLE_S)
    await window.tasks.wait_idle()
    out = out.expanduser().resolve()
    temporary = out.with_name(f".{out.stem}.partial.png")
    if not (out.parent.is_dir() and window.grab().save(str(temporary), "PNG")):
        print(
            f"{out}: cannot write the screenshot; check that the folder exists and is writable.",
            file=sys.stderr,
        )
        return 2
    temporary.replace(out)
    log.info("Screenshot of the %s page saved to %s", page, out)
    return 0


def _show_bands(window: MainWindow, bands: Sequence[int]) -> bool:
    view = window.data_page.raster_view
    if view.info is None or len(bands) not in (1, 3) or not set(bands) <= set(view.info.data_bands):
        shown = view.info.describe() if view.info else "no raster is shown"
        print(
            f"--bands {bands}: give one or three data bands of the previewed raster ({shown}).",
            file=sys.stderr,
        )
        return False
    view.controls.set_choice(DisplayChoice(bands=tuple(bands), colormap=view.controls.choice().colormap))
    return True
