"""The progress bar wrapper and the console tables."""

from __future__ import annotations

import io
import math

import pytest
from test_bench_samples import sample_result

from bench.output.progress import Progress
from bench.output.table import fmt_number, render, results_table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_counts_in_batches(capsys: pytest.CaptureFixture[str]) -> None:
    terminal = Terminal()  # stdout on a terminal: the bar, on stderr
    with Progress(100, "async/sleep", enabled=True, stream=terminal) as progress:
        for _ in range(100):
            progress.advance()
    err = capsys.readouterr().err
    assert "async/sleep" in err


def test_disabled_progress_is_silent(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(total=10, description="x", enabled=False) as progress:
        progress.advance(10)
    assert capsys.readouterr().err == ""
    assert Progress.wanted(no_progress=True) is False


def test_number_formatting() -> None:
    assert fmt_number(1234567) == "1,234,567"
    assert fmt_number(1234.5678) == "1,234.57"
    assert fmt_number(math.nan) == "-"
    assert fmt_number(None) == "-"
    assert fmt_number(True) == "yes" and fmt_number(False) == "NO"


def test_tables_align() -> None:
    text = render(["a", "num"], [["x", "1"], ["long", "1,000"]], right_align_from=1)
    lines = text.splitlines()
    assert lines[2].endswith("    1") and lines[3].endswith("1,000")
    table = results_table(
        [sample_result().to_dict(), sample_result(run_type="process", complete=False).to_dict()]
    )
    assert "Bound" in table and "process" in table and "incomplete" in table
