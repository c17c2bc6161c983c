"""Progress off a terminal (a line every 10 s on a fake clock) and the estimate before a run."""

from __future__ import annotations

import io

import pytest
from bench_support import sleep_context

from bench.output.progress import Progress, ProgressLines, format_duration
from bench.run import context, mode
from bench.run.bound import run_bound, warmup_records


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_interval_with_done_total_rate_and_elapsed() -> None:
    clock, out = FakeClock(), io.StringIO()
    lines = ProgressLines(100_000, "baseline/sleep", out, clock, interval_s=10.0)
    lines.advance(1000)
    clock.now += 9.9
    lines.tick()
    assert out.getvalue() == ""  # not due yet
    lines.advance(900)
    clock.now += 0.1
    lines.tick()
    assert out.getvalue() == (
        "   baseline/sleep: 1,900/100,000 records (1.9%), 190 records/s, 10 s elapsed, "
        "about 8 min 36 s left\n"
    )
    lines.tick()  # the same moment: no second line
    assert out.getvalue().count("\n") == 1
    # A stalled interval still reports (0 records/s, nothing left to estimate from).
    clock.now += 10.0
    lines.tick()
    assert out.getvalue().splitlines()[1] == (
        "   baseline/sleep: 1,900/100,000 records (1.9%), 0 records/s, 20 s elapsed"
    )
    # The rate is that of the last interval, not the average since the start.
    lines.advance(5000)
    clock.now += 10.0
    lines.tick()
    assert ", 500 records/s, 30 s elapsed, about 3 min 06 s left" in out.getvalue().splitlines()[2]


def test_off_a_terminal_progress_prints_lines_not_a_bar() -> None:
    clock, out = FakeClock(), io.StringIO()  # StringIO: not a TTY, like a pipe or a CI log
    progress = Progress(10, "async/io", enabled=True, stream=out, clock=clock)
    progress.advance(4)
    clock.now += 10.0
    # What the reporting thread does every second (not started here: the test ticks itself).
    assert progress._lines is not None
    progress._lines.tick()
    progress.close()
    assert out.getvalue() == (
        "   async/io: 4/10 records (40.0%), 0 records/s, 10 s elapsed, about 15 s left\n"
    )


def test_no_progress_prints_nothing() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress(10, "async/io", enabled=Progress.wanted(True), stream=out, clock=clock) as p:
        p.advance(10)
    assert out.getvalue() == ""


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0 s"), (59.4, "59 s"), (500, "8 min 20 s"), (3600 + 5 * 60 + 29, "1 h 05 min")],
)
def test_durations_read_in_units_a_reader_plans_with(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_the_estimate_before_a_run_comes_from_the_bound(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = sleep_context("--num-messages", "100000")
    spec = context.run_names(ctx.options, "baseline", "sleep", "x")
    bound = run_bound(spec, ctx, 100_000, {}, {})
    mode.print_limits(spec, ctx, bound, 1530.0, mode.produce_plan(spec, ctx))
    printed = capsys.readouterr().out.splitlines()
    # Baseline: one 5 ms record at a time, 200 records/s, so 100,000 records take 500 s.
    assert printed[-1] == (
        "   estimated duration: 8 min 20 s plus the join and producing (100,000 records at 200/s)"
    )


def test_an_open_loop_estimate_is_paced_by_the_offered_rate() -> None:
    ctx = sleep_context("--num-messages", "20000")
    spec = context.run_names(ctx.options, "async", "sleep", "x", rate=1000.0)
    bound = run_bound(spec, ctx, 20_000, {}, {})
    assert bound.bound_tps > 1000  # the async bound is higher than the offered rate
    plan = mode.produce_plan(spec, ctx, warmup_records(spec, ctx, bound))
    assert plan.warmup_messages == 3000  # 3 s at the rate
    assert mode.estimated_duration_s(spec, bound, plan) == pytest.approx(23.0)
