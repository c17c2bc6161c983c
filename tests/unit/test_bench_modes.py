"""One mode's run without a broker: names, consumer settings, and turning collected completions
into a result (the consumer is not started)."""

from __future__ import annotations

import math

import pytest

from bench.cli import parse_args
from bench.output.progress import Progress
from bench.run import context, mode, summary
from bench.run.collector import Collector
from bench.workloads import WORKLOADS, Workload, WorkloadSettings
from bench.workloads.cpu import CpuWorkload


class FakeCompletion:
    def __init__(
        self, partition: int, offset: int, key: bytes, received: float, done: float, ok: bool = True
    ) -> None:
        self.topic, self.partition, self.offset, self.key = "t", partition, offset, key
        self.received_at, self.completed_at, self.ok = received, done, ok


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
    ctx = _context()
    cpu = context.run_names(ctx.options, "async", "cpu", "x")
    assert mode.engine_options(cpu, ctx) == {
        "max_in_flight": 1000,
        "drain_timeout_s": mode.DRAIN_TIMEOUT_S,
        "concurrency": 4,  # 2 x cores
        "worker_concurrency": 2,
    }
    ctx = _context("--worker-concurrency", "8", "--workers", "3")
    sleep = context.run_names(ctx.options, "process", "sleep", "x")
    options = mode.engine_options(sleep, ctx)
    assert (options["workers"], options["worker_concurrency"]) == (3, 8)
    assert "concurrency" not in options  # unset: the library's default


def test_summary_of_a_complete_run() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "process", "sleep", "x")
    collector = _collector(
        [FakeCompletion(0, i, b"k%d" % (i % 2), 10.0, 10.0 + 0.01 * (i + 1)) for i in range(4)]
    )
    assert collector.first_assign_at is not None
    outcome = summary.RunOutcome(
        started=collector.first_assign_at - 0.5,
        engine_options={},
        wall_s=1.0,
        engine_stats={"engine_info": {"workers": 3, "worker_concurrency": 1}},
    )
    result = summary.summarize(spec, ctx, collector, 4, outcome)
    assert result.complete and result.error is None
    assert result.run_type == "process"
    assert result.messages_processed == 4 and result.missing == 0
    assert result.total_time_sec == pytest.approx(0.04)
    assert result.throughput_tps == pytest.approx(100)
    assert result.max_processing_ms == pytest.approx(40)
    assert result.join_time_sec == pytest.approx(0.5)
    # 2 keys < 3 workers x 1: parallelism 2 over 5 ms -> 400/s
    assert result.bound_parallelism == 2 and result.bound_tps == pytest.approx(400)
    assert result.efficiency == pytest.approx(0.25)


def test_cpu_bound_counts_the_cores_the_engine_can_use() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "baseline", "cpu", "x")
    collector = _collector([FakeCompletion(0, 0, b"k", 1.0, 1.001)])
    outcome = summary.RunOutcome(started=0.0, engine_options={}, wall_s=1.0)
    result = summary.summarize(spec, ctx, collector, 1, outcome)
    assert result.service_time_ms == pytest.approx(1.0)
    assert result.bound_parallelism == 1 and result.bound_tps == pytest.approx(1000)


def test_summary_of_a_timed_out_run() -> None:
    ctx = _context("--timeout-sec", "1")
    spec = context.run_names(ctx.options, "async", "cpu", "x")
    collector = _collector([FakeCompletion(0, 0, b"k", 1.0, 1.5)])
    late = summary.RunOutcome(started=0.0, engine_options={}, wall_s=2.0)
    result = summary.summarize(spec, ctx, collector, 4, late)
    assert not result.complete and not result.interrupted
    assert result.missing == 3
    assert "1 of 4" in (result.error or "") and "--timeout-sec" in (result.error or "")
    early = summary.RunOutcome(started=0.0, engine_options={}, wall_s=0.2)
    assert summary.summarize(spec, ctx, collector, 4, early).interrupted


def test_summary_of_a_failed_run_has_no_numbers() -> None:
    ctx = _context()
    spec = context.run_names(ctx.options, "async", "sleep", "x")
    collector = Collector(Progress(1, "t", enabled=False))
    outcome = summary.RunOutcome(
        started=0.0, engine_options={}, wall_s=0.1, error="ValueError: boom"
    )
    result = summary.summarize(spec, ctx, collector, 4, outcome)
    assert not result.complete and result.error == "ValueError: boom"
    assert math.isnan(result.throughput_tps) and math.isnan(result.join_time_sec)
    never = summary.failed_result(spec, ctx.options, "setup failed: x")
    assert never.missing == 4 and not never.complete and never.run_type == "async"
