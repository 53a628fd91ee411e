"""Output that survives any console encoding.

A Windows console or a redirected file often uses cp1252 (or an OEM code page), which cannot encode
the arrows and block characters some texts use; Python then raises UnicodeEncodeError in the middle
of ``--help`` or a job. The ``modelai`` command therefore writes through an error handler that
spells such characters in ASCII (``->``, ``<->``, ``#``) and replaces anything else with ``?``.
"""

from __future__ import annotations

import codecs
import io
import sys
from typing import TextIO

ERROR_HANDLER = "modelai-ascii"
ASCII_SPELLINGS = {
    "→": "->",
    "←": "<-",
    "↔": "<->",
    "…": "...",
    "–": "-",
    "—": "-",
    "×": "x",
    "²": "^2",
    "█": "#",
    "·": ".",
    "°": " deg",
    "µ": "u",
    "‘": "'",
    "’": "'",
    "“": '"',
    "”": '"',
}


def spell_in_ascii(error: UnicodeError) -> tuple[str, int]:
    """The codec error handler: ASCII spellings of the characters the encoding lacks."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start : error.end]
    return "".join(ASCII_SPELLINGS.get(char, "?") for char in text), error.end


codecs.register_error(ERROR_HANDLER, spell_in_ascii)


def make_safe(stream: TextIO) -> None:
    """Lets ``stream`` write any text: characters its encoding lacks are spelled in ASCII."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors=ERROR_HANDLER)


def make_standard_streams_safe() -> None:
    """Applies :func:`make_safe` to stdout and stderr, before anything is printed."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            make_safe(stream)


def can_encode(stream: TextIO, text: str) -> bool:
    """Whether ``stream``'s encoding can write ``text`` as it is (not spelled in ASCII); a stream
    without an encoding (in memory) holds any text."""
    encoding = getattr(stream, "encoding", None)
    if encoding is None:
        return True
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
