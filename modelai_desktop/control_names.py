"""Engine messages in the window's words: command-line flags become the controls that set them.

The engine's errors say what to do in terms of ``modelai`` options ("pass --overwrite"), because the
command line is its first face. In the window the same advice must name the checkbox or field the
user sees, or the message sends them looking for a flag they cannot type. The rewriting is a table
of phrases, most specific first, so a message the table does not know stays as it is.
"""

from __future__ import annotations

import re

# Whole phrases first (they read as sentences in the window), then single flags.
PHRASES: tuple[tuple[str, str], ...] = (
    (r"Resume with --resume .+$", "Press Resume to continue from it."),
    (r"Choose another name or pass --overwrite\.", "Choose another name under “Save model as”."),
    (r"Use --overwrite to replace them", "Tick “Replace existing outputs” to replace them"),
    (r"pass --overwrite", "tick “Replace existing outputs”"),
)
FLAGS: dict[str, str] = {
    "--overwrite": "“Replace existing outputs”",
    "--batch-size": "“Batch size”",
    "--patch": "“Patch size”",
    "--lr": "“Learning rate”",
    "--epochs": "“Epochs”",
    "--val-fraction": "“Validation”",
    "--patience": "“Early stopping”",
    "--bands": "“Bands”",
    "--base-width": "“Network width”",
    "--patches-per-epoch": "“Patches / epoch”",
    "--tile": "“Tile”",
    "--overlap": "“Overlap”",
    "--threshold": "“Custom anomaly threshold”",
}
_FLAG = re.compile(
    r"(?<![\w-])("
    + "|".join(re.escape(flag) for flag in sorted(FLAGS, key=len, reverse=True))
    + r")(?![\w-])"
)


def in_window_terms(message: str) -> str:
    """The message with every known command-line flag replaced by the window control that sets it."""
    for pattern, replacement in PHRASES:
        message = re.sub(pattern, replacement, message, flags=re.MULTILINE)
    return _FLAG.sub(lambda match: FLAGS[match.group(1)], message)
