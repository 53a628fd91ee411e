"""Help > About lists the third-party software with its licences."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.gui


def test_about_lists_third_party_licences(window):
    [about] = [action for action in window.menuBar().actions() if action.text() == "&Help"]
    [show] = [action for action in about.menu().actions() if action.text().startswith("&About")]
    show.trigger()
    box = window.about_box
    assert box.isVisible()
    assert "GNU LGPL 3.0" in box.informativeText() and "THIRD-PARTY-NOTICES.txt" in box.informativeText()
    details = box.detailedText()
    assert "PySide6_Essentials 6.10.2: LGPL-3.0-only" in details
    for name in ("torch 2.13.0", "rasterio 1.4", "numpy ", "pyqtgraph 0.14.0"):
        assert name in details
    box.grab().save("/tmp/hcli_about.png")
    box.close()
