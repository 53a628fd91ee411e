"""The list of subcommand modules, in the order ``modelai --help`` shows them."""

from __future__ import annotations

REGISTRARS: list = []
