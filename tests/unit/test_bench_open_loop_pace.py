"""An open loop's warm-up, timeout, estimate, progress and throughput count what the run really
consumes: the warm-up is --warmup-s of consuming at min(rate, bound), the timeout and the
estimate count its records, the progress lines name them, and TPS / efficiency are those of the
measured records against min(offered, bound)."""

from __future__ import annotations

import io
import math

import pytest
from bench_completions import completion
from bench_support import sleep_context

from bench.output.progress import ProgressLines
from bench.output.table import WIDTH
from bench.run import context, mode, summary
from bench.run.bound import JOIN_ALLOWANCE_S, run_bound, run_timeout, warmup_records
from bench.run.phase import Phase


def _context(*argv: str) -> context.RunContext:
    return sleep_context("--num-partitions", "4", *argv)


def test_a_slow_mode_warms_up_for_its_own_work_and_its_timeout_counts_the_warm_up() -> None:
    # The new user's command: baseline (200/s) offered 5,000/s for 2,000 records.
    ctx = _context("--num-messages", "2000", "--rate", "5000")
    spec = context.run_names(ctx.options, "baseline", "sleep", "x", rate=5000.0)
    bound = run_bound(spec, ctx, 2000, {}, {})
    assert bound.bound_tps == pytest.approx(200)
    warm = warmup_records(spec, ctx, bound)
    assert warm == 600  # 3 s of its work at 200/s, not 3 s x 5,000/s = a 75 s backlog
    plan = mode.produce_plan(spec, ctx, warm)
    assert plan.total_messages == 2600
    # Every record at min(rate, bound) = 200/s: 13 s, three times, plus the join allowance.
    assert run_timeout(spec, ctx, bound, plan.total_messages) == math.ceil(
        3 * 2600 / 200 + JOIN_ALLOWANCE_S
    )
    assert mode.estimated_duration_s(spec, bound, plan) == pytest.approx(13.0)


def test_a_mode_that_keeps_up_warms_up_at_the_rate() -> None:
    ctx = _context("--num-messages", "4000", "--rate", "2000")
    spec = context.run_names(ctx.options, "async", "sleep", "x", rate=2000.0)
    bound = run_bound(spec, ctx, 4000, {}, {})
    plan = mode.produce_plan(spec, ctx, warmup_records(spec, ctx, bound))
    assert plan.warmup_messages == 6000 and plan.total_messages == 10_000
    # 10,000 records at 2,000/s: 5 s (the estimate the new user saw said 20 s).
    assert mode.estimated_duration_s(spec, bound, plan) == pytest.approx(5.0)
    assert run_timeout(spec, ctx, bound, plan.total_messages) == math.ceil(15 + JOIN_ALLOWANCE_S)


def test_the_lines_before_a_run_name_the_warm_up_and_fit_100_columns(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ctx = _context("--num-messages", "2000", "--rate", "5000", "--key-distribution", "zipf:1.0")
    spec = context.run_names(ctx.options, "baseline", "sleep", "x", rate=5000.0, members=2)
    bound = run_bound(spec, ctx, 2000, {}, {})
    plan = mode.produce_plan(spec, ctx, warmup_records(spec, ctx, bound))
    timeout = run_timeout(spec, ctx, bound, plan.total_messages)
    mode.print_limits(spec, ctx, bound, timeout, plan)
    out = capsys.readouterr().out
    assert max(len(line) for line in out.splitlines()) <= WIDTH, out
    text = " ".join(out.split())  # the lines may wrap anywhere
    assert "open loop: 5,000 records/s offered, after a warm-up of" in text
    assert "above the bound: this mode cannot keep up; its warm-up is 3 s of its work" in text
    assert (
        f"({plan.total_messages:,} records, {plan.warmup_messages:,} of them warm-up, at 400/s)"
        in text
    )
    assert "hottest key" in text and "2 members" in text


def test_a_fast_run_is_estimated_under_1_s(capsys: pytest.CaptureFixture[str]) -> None:
    ctx = _context("--num-messages", "2000")
    spec = context.run_names(ctx.options, "async", "sleep", "x")
    bound = run_bound(spec, ctx, 2000, {}, {})
    mode.print_limits(spec, ctx, bound, 31.0, mode.produce_plan(spec, ctx))
    assert (
        "estimated duration: under 1 s plus the join and producing (2,000 records at 20,000/s)"
        in (capsys.readouterr().out)
    )
    assert mode.estimate_text(0.4) == "under 1 s" and mode.estimate_text(1.2) == "1 s"


def test_progress_lines_say_how_many_records_are_warm_up() -> None:
    now = [0.0]
    out = io.StringIO()
    lines = ProgressLines(10_000, "async/sleep", out, lambda: now[0], 10.0, warmup=6000)
    lines.advance(2000)
    now[0] = 10.0
    lines.tick()
    assert out.getvalue().startswith(
        "   async/sleep: 2,000/10,000 records (20.0%; 6,000 of them warm-up), 200 records/s"
    )


def _phase(done_at: list[float], received_at: list[float]) -> Phase:
    samples = [
        completion(i % 4, i // 4, f"key-{i % 100}".encode(), r, d - 0.005, d)
        for i, (r, d) in enumerate(zip(received_at, done_at, strict=True))
    ]
    phase = Phase(0.0, [samples], [[0.0]])
    phase.wall_s = max(done_at)
    return phase


def test_open_loop_tps_is_over_the_measured_records_against_min_offered_bound() -> None:
    # Baseline offered 2,000/s: the 4,000 measured records arrive in 2 s, right after the
    # warm-up, but wait until the warm-up's 600 records (3 s of its work) are done; then one
    # every 5 ms. From their receipt it would read 4,000 / 23 s = 174/s.
    ctx = _context("--num-messages", "4000", "--rate", "2000")
    spec = context.run_names(ctx.options, "baseline", "sleep", "x", rate=2000.0)
    plan = mode.produce_plan(spec, ctx, 600)
    received = [0.3 + i / 2000 for i in range(4000)]
    done = [3.0 + (i + 1) * 0.005 for i in range(4000)]
    result = summary.summarize(spec, ctx, plan, _phase(done, received), None, {}, 99.0)
    assert result.throughput_tps == pytest.approx(200.0)
    assert result.bound_tps == pytest.approx(200.0)  # min(2,000 offered, 200)
    assert result.efficiency == pytest.approx(1.0)
    # Async keeps up at 2,000/s: its bound here is the rate, not 20,000 (Eff was 0.10).
    fast = context.run_names(ctx.options, "async", "sleep", "x", rate=2000.0)
    done = [r + 0.01 for r in received]
    result = summary.summarize(fast, ctx, plan, _phase(done, received), None, {}, 99.0)
    assert result.bound_tps == pytest.approx(2000.0)
    assert result.throughput_tps == pytest.approx(2000.0)
    assert result.efficiency == pytest.approx(1.0)
    assert result.open_loop is not None and result.open_loop["consumer_bound_tps"] == 20_000


def test_skew_and_stuck_bounds_are_over_the_measured_records_only() -> None:
    ctx = _context(
        "--num-messages", "4000", "--rate", "2000", "--key-distribution", "zipf:1.0",
        "--stuck-key-ms", "2000", "--skip-baseline", "--skip-process",
    )  # fmt: skip
    spec = context.run_names(ctx.options, "async", "sleep", "x", rate=2000.0)
    received = [i / 2000 for i in range(4000)]
    done = [r + 0.01 for r in received]
    with_warmup = summary.summarize(
        spec, ctx, mode.produce_plan(spec, ctx, 6000), _phase(done, received), None, {}, 99.0
    )
    without = summary.summarize(
        spec, ctx, mode.produce_plan(spec, ctx, 0), _phase(done, received), None, {}, 99.0
    )
    assert with_warmup.bound_tps == without.bound_tps
    assert with_warmup.hottest_key_share == without.hottest_key_share
    one = run_bound(spec, ctx, 4000, {}, {})
    assert with_warmup.bound_tps == pytest.approx(min(2000.0, one.bound_tps))
