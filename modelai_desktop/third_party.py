"""The third-party software ModelAI ships, and under which licences.

The app bundles Qt (LGPL, through PySide6), GDAL and PROJ (inside rasterio), torch and more; their
licences ask that the notices travel with the app. ``packaging/notices.py`` writes them into the
bundle as THIRD-PARTY-NOTICES.txt at build time. Help > About lists the components from that file
in an installed app, or, in a development checkout, from the packages installed here.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

APP_DISTRIBUTION = "modelai-desktop"
NOTICES_NAME = "THIRD-PARTY-NOTICES.txt"
SUMMARY_END = "=" * 78
THIRD_PARTY_TEXT = (
    "ModelAI includes third-party software: Qt (under the GNU LGPL 3.0), GDAL, PROJ, PyTorch, NumPy"
    f" and more. Show Details lists each with its licence; {NOTICES_NAME} in the app folder holds"
    " the licence texts."
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r";.*\bextra\s*==")
_LICENSE_CLASSIFIER = "License :: OSI Approved :: "


@dataclass(frozen=True)
class Component:
    """One bundled distribution: its name, version, licence and where its licence texts are."""

    name: str
    version: str
    license: str
    license_files: tuple[Path, ...] = ()

    def line(self) -> str:
        return f"{self.name} {self.version}: {self.license}"


def runtime_components(root: str = APP_DISTRIBUTION) -> list[Component]:
    """Every installed distribution the app needs at run time (its dependencies' closure, without
    extras such as dev tools), sorted by name."""
    found: dict[str, metadata.Distribution] = {}
    pending = [root]
    while pending:
        name = _canonical(pending.pop())
        if name in found:
            continue
        try:
            distribution = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = distribution
        for requirement in distribution.requires or []:
            match = _NAME.match(requirement)
            if match and not _EXTRA.search(requirement):
                pending.append(match.group())
    found.pop(_canonical(root), None)
    return sorted((_component(dist) for dist in found.values()), key=lambda item: item.name.lower())


def license_of(distribution: metadata.Distribution) -> str:
    """The licence as the package declares it: SPDX expression, else a short License field, else
    its trove classifiers."""
    fields = distribution.metadata
    expression = fields.get("License-Expression")
    if expression:
        return expression
    declared = (fields.get("License") or "").strip()
    if declared and "\n" not in declared and len(declared) <= 80:
        return declared
    classifiers = [
        value.removeprefix(_LICENSE_CLASSIFIER)
        for value in fields.get_all("Classifier") or []
        if value.startswith(_LICENSE_CLASSIFIER)
    ]
    return ", ".join(classifiers) or "see its licence file"


def notices_path() -> Path | None:
    """THIRD-PARTY-NOTICES.txt of an installed (frozen) app: beside the programs; None elsewhere."""
    if not getattr(sys, "frozen", False):
        return None
    path = Path(sys.executable).resolve().parent / NOTICES_NAME
    return path if path.is_file() else None


def components_summary() -> str:
    """The list Help > About shows: the notices file's summary, or the installed packages."""
    path = notices_path()
    if path is not None:
        return path.read_text(encoding="utf-8").split(SUMMARY_END)[0].strip()
    lines = [component.line() for component in runtime_components()]
    heading = "Python packages (a development install; the installed app also lists native libraries):"
    return "\n".join([heading, *lines])


def _component(distribution: metadata.Distribution) -> Component:
    files = tuple(
        Path(str(distribution.locate_file(entry)))
        for entry in distribution.files or []
        if ".dist-info/" in entry.as_posix() and _is_license_file(entry.name)
    )
    return Component(distribution.metadata["Name"], distribution.version, license_of(distribution), files)


def _is_license_file(name: str) -> bool:
    return name.upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE"))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
