"""The list of subcommand modules, in the order ``modelai --help`` shows them."""

from __future__ import annotations

from engine.cli import demo, jobs_cmd, models_cmd, predict, train

REGISTRARS: list = [train.register, predict.register, jobs_cmd.register, models_cmd.register, demo.register]
