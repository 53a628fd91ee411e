"""QGIS styles (``.qml``) for the anomaly outputs, which QGIS applies when it opens the raster.

A GeoTIFF colour table cannot hold transparency (TIFF palettes are RGB only), so only a style can
show "normal" as see-through: the anomaly mask's style draws normal pixels transparent and
anomalies in a colour that stands out on imagery, and the heat map's style is a colour ramp from
transparent (lowest error) through the threshold (a labelled stop) to red.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

from engine.inference.outputs import qgis_document, qgis_style

ANOMALY_COLOR = "#ff00ff"
NORMAL_COLOR = "#000000"
RAMP = (("#2c7bb6", 0), ("#ffffbf", 200), ("#d7191c", 255))  # colour and alpha at low, threshold, high


def anomaly_mask_style() -> str:
    """Normal (0) transparent, anomaly (1) opaque magenta."""
    return qgis_style([(0, "normal", NORMAL_COLOR), (1, "anomaly", ANOMALY_COLOR)], transparent={0})


def heat_map_style(low: float, threshold: float, high: float) -> str:
    """An interpolated ramp low -> threshold -> high; values above ``high`` keep its colour.

    The ramp starts at 0 (errors are squared differences) or ``low`` if lower, and its ends move
    away from the threshold when every error lies on one side of it, so the stops stay ordered.
    """
    low = min(low, 0.0)
    span = max(high - low, abs(threshold), 1e-12)
    if low >= threshold:
        low = threshold - span / 2
    if high <= threshold:
        high = threshold + span / 2
    stops = [(low, f"{low:.4g}"), (threshold, f"threshold {threshold:.4g}"), (high, f"{high:.4g}")]
    style = qgis_document("singlebandpseudocolor")
    renderer = style.renderer
    renderer.set("classificationMin", repr(low))
    renderer.set("classificationMax", repr(high))
    limits = ElementTree.SubElement(renderer.find("minMaxOrigin"), "limits")
    limits.text = "None"  # user-defined: QGIS keeps these values instead of stretching anew
    shader = ElementTree.SubElement(ElementTree.SubElement(renderer, "rastershader"), "colorrampshader")
    shader.attrib.update(
        colorRampType="INTERPOLATED",
        classificationMode="1",
        clip="0",
        minimumValue=repr(low),
        maximumValue=repr(high),
    )
    for (value, label), (color, alpha) in zip(stops, RAMP, strict=True):
        ElementTree.SubElement(shader, "item", value=repr(value), label=label, color=color, alpha=str(alpha))
    return style.text()
