"""One mode's run without a broker: names, consumer settings, and turning collected completions
into a result (the consumer is not started)."""

from __future__ import annotations

import math

import pytest

from bench.cli import parse_args
from bench.output.progress import Progress
from bench.output.results import RunResult
from bench.run import context, mode, summary
from bench.run.bound import JOIN_ALLOWANCE_S, run_bound, run_timeout
from bench.run.collector import Collector
from bench.run.phase import Phase
from bench.run.produce import ProducePlan
from bench.workloads import WORKLOADS, Workload, WorkloadSettings
from bench.workloads.cpu import CpuWorkload
from pyrallel_consumer.config import build_config


class FakeCompletion:
    def __init__(
        self, partition: int, offset: int, key: bytes, received: float, done: float, ok: bool = True
    ) -> None:
        self.topic, self.partition, self.offset, self.key = "t", partition, offset, key
        self.received_at, self.completed_at, self.ok = received, done, ok
        self.dispatched_at = received + (done - received) / 2  # half of the sojourn waiting


class MeasuredCpu(CpuWorkload):
    """The cpu workload with a known service time instead of a measured one."""

    def set_up(self) -> None:
        self._service_s = 0.001


def _context(*argv: str) -> context.RunContext:
    opts = parse_args(["--num-messages", "4", "--num-keys", "2", *argv])
    settings = WorkloadSettings(sleep_ms=opts.worker_sleep_ms)
    workloads: dict[str, Workload] = {
        name: cls(settings) for name, cls in WORKLOADS.items() if name != "cpu"
    }
    workloads["cpu"] = cpu = MeasuredCpu(settings)
    cpu.set_up()
    return context.RunContext(
        options=opts,
        bootstrap_servers="127.0.0.1:1",
        broker_kind="tansu",
        workloads=workloads,
        cores=2,
    )


def _collector(completions: list[FakeCompletion]) -> Collector:
    collector = Collector(Progress(len(completions), "t", enabled=False))
    collector.on_assign([])  # an empty assignment is not the join
    assert collector.first_assign_at is None
    collector.on_assign([("t", 0)])
    for completion in completions:
        collector.on_complete(completion)
    return collector


def test_names_carry_the_workload_suffix_and_run_id() -> None:
    ctx = _context("--workload", "all")
    spec = context.run_names(ctx.options, "async", "io", "abc")
    assert spec.topic == "pyrallel-benchmark-async-io"
    assert spec.group_id == "pyrallel-benchmark-async-io-group-abc"
    assert spec.profile_stem == "pyrallel-async-io"
    plain = context.run_names(_context("--skip-reset").options, "process", "sleep", "abc")
    assert (plain.topic, plain.group_id) == (
        "pyrallel-benchmark-process",
        "pyrallel-benchmark-process-group",
    )


def test_tansu_gets_a_short_session_and_user_settings_win() -> None:
    ctx = _context("--kafka-config", "fetch.wait.max.ms=5")
    config = context.kafka_config(ctx, "g")
    assert config["session.timeout.ms"] == context.TANSU_SESSION_TIMEOUT_MS
    assert config["fetch.wait.max.ms"] == "5"
    assert config["auto.offset.reset"] == "earliest"


def test_engine_options_take_the_workloads_preferences_then_the_users() -> None:
    """Each engine gets only the capacity options it reads: the library refuses the rest."""
    ctx = _context()
    cpu = context.run_names(ctx.options, "async", "cpu", "x")
    assert mode.engine_options(cpu, ctx) == {
        "max_in_flight": 1000,
        "drain_timeout_s": mode.DRAIN_TIMEOUT_S,
        "concurrency": 4,  # 2 x cores
    }
    process_cpu = context.run_names(ctx.options, "process", "cpu", "x")
    assert mode.engine_options(process_cpu, ctx)["worker_concurrency"] == 2
    ctx = _context("--worker-concurrency", "8", "--workers", "3", "--concurrency", "5")
    sleep = context.run_names(ctx.options, "process", "sleep", "x")
    options = mode.engine_options(sleep, ctx)
    assert (options["workers"], options["worker_concurrency"]) == (3, 8)
    assert "concurrency" not in options  # the async engine's
    for engine in ("baseline", "async", "process"):
        spec = context.run_names(ctx.options, engine, "sleep", "x")
        build_config(
            {"bootstrap.servers": "x:1", "group.id": "g"},
            topics=["t"],
            engine=engine,
            **mode.engine_options(spec, ctx),
        )  # accepted by every engine


def _phase(
    collector: Collector,
    *,
    started: float,
    wall_s: float,
    engine_stats: dict[str, object] | None = None,
    error: str | None = None,
) -> Phase:
    phase = Phase(started, [collector.samples], [collector.assigned_at])
    phase.wall_s, phase.error = wall_s, error
    phase.engine_stats = dict(engine_stats or {})
    return phase


def _summarize(
    ctx: context.RunContext, spec: context.RunSpec, phase: Phase, expected: int, timeout: float
) -> RunResult:
    plan = mode.produce_plan(spec, ctx)
    plan = ProducePlan(plan.bootstrap_servers, plan.topic, expected, ctx.options.num_keys)
    return summary.summarize(spec, ctx, plan, phase, None, {}, timeout)


def test_summary_of_a_complete_run() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "process", "sleep", "x")
    collector = _collector(
        [FakeCompletion(0, i, b"k%d" % (i % 2), 10.0, 10.0 + 0.01 * (i + 1)) for i in range(4)]
    )
    assert collector.first_assign_at is not None
    phase = _phase(
        collector,
        started=collector.first_assign_at - 0.5,
        wall_s=1.0,
        engine_stats={"engine_info": {"workers": 3, "worker_concurrency": 1}},
    )
    result = _summarize(ctx, spec, phase, 4, 60)
    assert result.complete and result.error is None
    assert result.run_type == "process"
    assert result.messages_processed == 4 and result.missing == 0
    assert result.total_time_sec == pytest.approx(0.04)
    assert result.throughput_tps == pytest.approx(100)
    assert result.max_processing_ms == pytest.approx(40)
    # handed to the engine halfway through each sojourn (FakeCompletion)
    assert result.max_handler_ms == pytest.approx(20)
    assert result.p50_handler_ms == pytest.approx(12.5)  # median of 5, 10, 15, 20
    assert result.join_time_sec == pytest.approx(0.5)
    # 2 keys < 3 workers x 1: parallelism 2 over 5 ms -> 400/s
    assert result.bound_parallelism == 2 and result.bound_tps == pytest.approx(400)
    assert result.efficiency == pytest.approx(0.25)
    assert result.timeout_sec == 60 and result.hottest_key_share == pytest.approx(0.5)
    assert result.stuck_key is None and result.open_loop is None and result.group is None


def test_cpu_bound_counts_the_cores_the_engine_can_use() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "baseline", "cpu", "x")
    collector = _collector([FakeCompletion(0, 0, b"k", 1.0, 1.001)])
    result = _summarize(ctx, spec, _phase(collector, started=0.0, wall_s=1.0), 1, 60)
    assert result.service_time_ms == pytest.approx(1.0)
    assert result.bound_parallelism == 1 and result.bound_tps == pytest.approx(1000)


def test_summary_of_a_timed_out_run() -> None:
    ctx = _context("--timeout-sec", "1")
    spec = context.run_names(ctx.options, "async", "cpu", "x")
    collector = _collector([FakeCompletion(0, 0, b"k", 1.0, 1.5)])
    late = _summarize(ctx, spec, _phase(collector, started=0.0, wall_s=2.0), 4, 1.0)
    assert not late.complete and not late.interrupted
    assert late.missing == 3
    assert "1 of 4" in (late.error or "") and "timeout of 1 s (--timeout-sec)" in (late.error or "")
    early = _summarize(ctx, spec, _phase(collector, started=0.0, wall_s=0.2), 4, 1.0)
    assert early.interrupted


def test_summary_of_a_failed_run_has_no_numbers() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "async", "sleep", "x")
    collector = Collector(Progress(1, "t", enabled=False))
    phase = _phase(collector, started=0.0, wall_s=0.1, error="ValueError: boom")
    result = _summarize(ctx, spec, phase, 4, 60)
    assert not result.complete and result.error == "ValueError: boom"
    assert math.isnan(result.throughput_tps) and math.isnan(result.join_time_sec)
    never = summary.failed_result(spec, ctx.options, "setup failed: x")
    assert never.missing == 4 and not never.complete and never.run_type == "async"


def test_names_carry_the_rate_and_the_members() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "async", "sleep", "abc", rate=2500.0, members=2)
    assert spec.topic == "pyrallel-benchmark-async-r2500-m2"
    assert (spec.rate, spec.members) == (2500.0, 2)


def test_default_timeout_comes_from_the_bound_and_the_option_overrides_it() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "baseline", "sleep", "x")
    bound = run_bound(spec, ctx, 4, {}, {})
    assert bound.bound_tps == pytest.approx(200)  # one record at a time, 5 ms each
    # 3 x 4 records / 200 per s = 0.06 s, rounded up, plus the join allowance
    assert run_timeout(spec, ctx, bound, 4) == math.ceil(0.06 + JOIN_ALLOWANCE_S)
    given = _context("--timeout-sec", "7")
    assert run_timeout(spec, given, bound, 4) == 7


def test_the_in_flight_window_is_the_librarys_unless_given() -> None:
    """--max-in-flight left out takes the library's default, which grows with --batch-size."""
    assert parse_args(["--num-messages", "4"]).max_in_flight == 1000
    assert parse_args(["--num-messages", "4", "--batch-size", "500"]).max_in_flight == 2000
    given = ["--num-messages", "4", "--batch-size", "500", "--max-in-flight", "700"]
    assert parse_args(given).max_in_flight == 700
