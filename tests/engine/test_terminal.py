"""The terminal progress reporter: fitted to the terminal, ASCII where needed, short in logs."""

from __future__ import annotations

import io

import pytest

from engine.cli import QUIET, VERBOSE
from engine.cli.terminal import LOG_INTERVAL_S, TerminalReporter
from engine.progress import EpochEvent, ProgressEvent


class FakeClock:
    """Time that advances only when the test says so, so no assert depends on the machine's speed."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Console(io.TextIOWrapper):
    """A text stream that says it is a terminal, with a chosen encoding; keeps what was written."""

    def __init__(self, encoding: str = "utf-8") -> None:
        super().__init__(io.BytesIO(), encoding=encoding, newline="")

    def isatty(self) -> bool:
        return True

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode(self.encoding)


def progress(done: int, total: int = 100, stage: str = "predict", **fields) -> ProgressEvent:
    return ProgressEvent(stage=stage, done=done, total=total, rate=1.5, rate_unit="MPix/s", **fields)


def epoch(number: int) -> EpochEvent:
    return EpochEvent(number, 3, 0.5, 0.4, {"mean_iou": 0.7}, "val_loss", True, 1e-3, 2.0)


def drive(reporter: TerminalReporter, clock: FakeClock, events: list[ProgressEvent], step_s: float) -> None:
    for event in events:
        clock.now += step_s
        reporter.on_progress(event)


def test_the_bar_fits_an_80_column_terminal_and_is_cleared_with_spaces(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    console, clock = Console(), FakeClock()
    reporter = TerminalReporter(console, clock=clock)
    label = "D:/projects/survey 2024/mosaics/a very long folder name/north_block_orthomosaic.tif"
    drive(reporter, clock, [progress(done, label=label) for done in range(0, 101, 5)], step_s=1.0)
    drawn = console.text()
    assert "\x1b" not in drawn
    lines = [line for line in drawn.replace("\n", "\r").split("\r") if line]
    assert len(lines) == 21
    assert all(len(line) <= 79 for line in lines), max(lines, key=len)
    assert all("orthomosaic.tif" in line and "MPix/s" in line and "ETA" in line for line in lines)
    assert drawn.endswith("\n") and drawn.count("\n") == 1


def test_a_short_line_over_a_longer_one_is_padded(monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    console, clock = Console(), FakeClock()
    reporter = TerminalReporter(console, clock=clock)
    drive(reporter, clock, [progress(1, label="x" * 40), progress(2, total=3)], step_s=1.0)
    first, second = console.text().split("\r")[1:]
    assert len(second) == len(first) and second.rstrip() != second


def test_the_bar_is_ascii_where_the_encoding_cannot_draw_blocks(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    console, clock = Console("cp1252"), FakeClock()
    reporter = TerminalReporter(console, clock=clock)
    drive(reporter, clock, [progress(50), progress(100)], step_s=1.0)
    drawn = console.text()
    assert "#" * 12 + "." * 12 + " 50/100 predict" in drawn and "#" * 24 + " 100/100" in drawn


def test_a_log_gets_epoch_lines_and_a_few_progress_lines():
    log, clock = io.StringIO(), FakeClock()
    reporter = TerminalReporter(log, clock=clock)
    for number in (1, 2, 3):
        batches = [progress(done, total=50, stage="train", epoch=number, epochs=3) for done in range(1, 51)]
        drive(reporter, clock, batches, step_s=0.1)
        reporter.on_epoch(epoch(number))
    drive(reporter, clock, [progress(done, total=200) for done in range(1, 201)], step_s=0.5)
    lines = log.getvalue().splitlines()
    assert [line.split("  ")[0] for line in lines if line.startswith("epoch")] == [
        "epoch 1/3", "epoch 2/3", "epoch 3/3",
    ]  # fmt: skip
    progress_lines = [line for line in lines if "predict" in line]
    # 100 s of prediction: the first line, one per LOG_INTERVAL_S and the last, not one per 10 %.
    assert len(progress_lines) == 1 + int(100 / LOG_INTERVAL_S) + 1
    assert progress_lines[0].startswith("·" * 24 + " 1/200 predict")
    assert progress_lines[-1].startswith("█" * 24 + " 200/200 predict")


def test_verbose_logs_every_tenth_and_quiet_keeps_only_warnings():
    events = [progress(done) for done in range(1, 101)]
    verbose_log, clock = io.StringIO(), FakeClock()
    drive(TerminalReporter(verbose_log, verbosity=VERBOSE, clock=clock), clock, events, step_s=0.01)
    assert len(verbose_log.getvalue().splitlines()) == 11  # 0 %, 10 %, ... 100 %

    quiet_log = io.StringIO()
    quiet = TerminalReporter(quiet_log, verbosity=QUIET, clock=clock)
    drive(quiet, clock, events, step_s=100.0)
    quiet.on_epoch(epoch(1))
    quiet.on_message("info", "Device: CPU")
    quiet.on_message("warning", "Mask b.tif holds one class")
    assert quiet_log.getvalue() == "warning: Mask b.tif holds one class\n"


@pytest.mark.parametrize("columns", [30, 50, 200])
def test_any_width_gives_one_line_that_fits(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    console, clock = Console(), FakeClock()
    drive(TerminalReporter(console, clock=clock), clock, [progress(30, label="scene.tif")], step_s=1.0)
    line = console.text().strip("\r")
    assert 0 < len(line) <= columns - 1 and "\n" not in line
