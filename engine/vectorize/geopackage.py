"""Regions written as a GeoPackage that QGIS opens already styled.

QGIS reads a layer's default style from the GeoPackage's own ``layer_styles`` table (the table it
writes itself with "Save as Default"), so the class colours and names travel inside the one file.
The file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
import pyogrio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError

from engine.inference.outputs import OutputSet, hex_to_rgb, write_failure

GEOMETRY_COLUMN = "geom"
FILL_ALPHA = 170
LAYER_STYLES_SQL = """
CREATE TABLE IF NOT EXISTS layer_styles (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    f_table_catalog TEXT(256), f_table_schema TEXT(256), f_table_name TEXT(256),
    f_geometry_column TEXT(256), styleName TEXT(30), styleQML TEXT, styleSLD TEXT,
    useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30),
    update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
)"""


def write_styled_geopackage(
    target: Path,
    layer: str,
    geometries: np.ndarray,
    fields: dict[str, np.ndarray],
    crs_wkt: str | None,
    style_qml: str,
) -> None:
    """Writes one polygon layer with its attribute columns and QGIS default style to ``target``.

    Raises:
        OutputError: the file cannot be written (full disk, read-only folder).
    """
    with OutputSet(target.parent) as outputs:
        staging = outputs.temporary(target)
        staging.unlink()
        try:
            with warnings.catch_warnings():  # the staging name ends in .tmp, as every output's does
                warnings.filterwarnings("ignore", message="The filename extension should be")
                _write_layer(staging, layer, geometries, fields, crs_wkt)
            _add_default_style(staging, layer, style_qml)
        except (DataSourceError, DataLayerError, sqlite3.Error) as exc:
            raise write_failure(target, target.parent, exc) from exc
        outputs.stage(staging, target)
        outputs.commit()


def _write_layer(
    path: Path, layer: str, geometries: np.ndarray, fields: dict[str, np.ndarray], crs_wkt: str | None
) -> None:
    pyogrio.raw.write(
        str(path),
        shapely.to_wkb(geometries) if len(geometries) else np.array([], dtype=object),
        list(fields.values()),
        list(fields),
        layer=layer,
        driver="GPKG",
        geometry_type="Polygon",
        crs=crs_wkt,
    )


def _add_default_style(path: Path, layer: str, style_qml: str) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(LAYER_STYLES_SQL)
        connection.execute(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column,"
            " styleName, styleQML, styleSLD, useAsDefault, description, owner, ui)"
            " VALUES ('', '', ?, ?, ?, ?, '', 1, 'Written by ModelAI', '', '')",
            (layer, GEOMETRY_COLUMN, layer, style_qml),
        )
        connection.execute(
            "INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier)"
            " VALUES ('layer_styles', 'attributes', 'layer_styles')"
        )


def categorized_style(field: str, classes: Sequence[tuple[int, str, str]]) -> str:
    """A QGIS vector style: one legend entry per ``(value, name, #rrggbb)``, filled in its colour."""
    root, renderer = _renderer("categorizedSymbol", attr=field)
    categories = ElementTree.SubElement(renderer, "categories")
    symbols = ElementTree.SubElement(renderer, "symbols")
    for index, (value, name, color) in enumerate(classes):
        ElementTree.SubElement(
            categories, "category", value=str(value), label=name, symbol=str(index), render="true"
        )
        _fill_symbol(symbols, str(index), color)
    return _document(root)


def single_style(color: str) -> str:
    """A QGIS vector style that fills every polygon in one colour."""
    root, renderer = _renderer("singleSymbol")
    _fill_symbol(ElementTree.SubElement(renderer, "symbols"), "0", color)
    return _document(root)


def _renderer(kind: str, **attributes: str) -> tuple[ElementTree.Element, ElementTree.Element]:
    root = ElementTree.Element("qgis", version="3.28.0", styleCategories="Symbology")
    renderer = ElementTree.SubElement(
        root, "renderer-v2", type=kind, symbollevels="0", enableorderby="0", forceraster="0", **attributes
    )
    return root, renderer


def _fill_symbol(parent: ElementTree.Element, name: str, color: str) -> None:
    red, green, blue = hex_to_rgb(color)
    symbol = ElementTree.SubElement(
        parent, "symbol", type="fill", name=name, alpha="1", clip_to_extent="1", force_rhr="0"
    )
    layer = ElementTree.SubElement(symbol, "layer", {"class": "SimpleFill", "enabled": "1", "pass": "0"})
    options = ElementTree.SubElement(layer, "Option", type="Map")
    for key, value in (
        ("color", f"{red},{green},{blue},{FILL_ALPHA}"),
        ("outline_color", f"{red // 2},{green // 2},{blue // 2},255"),
        ("outline_style", "solid"),
        ("outline_width", "0.26"),
        ("outline_width_unit", "MM"),
        ("style", "solid"),
    ):
        ElementTree.SubElement(options, "Option", name=key, type="QString", value=value)


def _document(root: ElementTree.Element) -> str:
    ElementTree.indent(root)
    body = ElementTree.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"
