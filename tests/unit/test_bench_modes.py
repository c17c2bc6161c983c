"""Turning collected completions into a run result (no broker: the consumer is not started)."""

from __future__ import annotations

import math

import pytest

from bench import modes
from bench.cli import parse_args
from bench.progress import Progress


class FakeCompletion:
    def __init__(
        self, partition: int, offset: int, key: bytes, received: float, done: float, ok: bool = True
    ) -> None:
        self.topic, self.partition, self.offset, self.key = "t", partition, offset, key
        self.received_at, self.completed_at, self.ok = received, done, ok


def _context(*argv: str) -> modes.RunContext:
    opts = parse_args(["--num-messages", "4", "--num-keys", "2", *argv])
    return modes.RunContext(
        options=opts,
        bootstrap_servers="127.0.0.1:1",
        broker_kind="tansu",
        io_address=None,
        cpu_service_s=0.001,
        cores=2,
        kernel_releases_gil=True,
    )


def _collector(completions: list[FakeCompletion]) -> modes._Collector:
    collector = modes._Collector(Progress(len(completions), "t", enabled=False))
    collector.on_assign([])  # an empty assignment is not the join
    assert collector.first_assign_at is None
    collector.on_assign([("t", 0)])
    for completion in completions:
        collector.on_complete(completion)
    return collector


def test_names_carry_the_workload_suffix_and_run_id() -> None:
    ctx = _context("--workload", "all")
    spec = modes.run_names(ctx.options, "async", "io", "abc")
    assert spec.topic == "pyrallel-benchmark-async-io"
    assert spec.group_id == "pyrallel-benchmark-async-io-group-abc"
    assert spec.profile_stem == "pyrallel-async-io"
    plain = modes.run_names(_context("--skip-reset").options, "process", "sleep", "abc")
    assert (plain.topic, plain.group_id) == (
        "pyrallel-benchmark-process",
        "pyrallel-benchmark-process-group",
    )


def test_tansu_gets_a_short_session_and_user_settings_win() -> None:
    ctx = _context("--kafka-config", "fetch.wait.max.ms=5")
    config = modes.kafka_config(ctx, "g")
    assert config["session.timeout.ms"] == modes.TANSU_SESSION_TIMEOUT_MS
    assert config["fetch.wait.max.ms"] == "5"
    assert config["auto.offset.reset"] == "earliest"


def test_summary_of_a_complete_run() -> None:
    ctx = _context()
    spec = modes.run_names(ctx.options, "process", "sleep", "x")
    collector = _collector(
        [FakeCompletion(0, i, b"k%d" % (i % 2), 10.0, 10.0 + 0.01 * (i + 1)) for i in range(4)]
    )
    stats = {"engine_info": {"workers": 3, "worker_concurrency": 1}}
    result = modes.summarize(
        spec,
        ctx,
        collector,
        4,
        stats,
        wall=1.0,
        started=collector.first_assign_at - 0.5,
        profile_files=[],
        error=None,
    )
    assert result.complete and result.error is None
    assert result.messages_processed == 4 and result.missing == 0
    assert result.total_time_sec == pytest.approx(0.04)
    assert result.throughput_tps == pytest.approx(100)
    assert result.max_processing_ms == pytest.approx(40)
    assert result.join_time_sec == pytest.approx(0.5)
    # 2 keys < 3 workers x 1: parallelism 2 over 5 ms -> 400/s
    assert result.bound_parallelism == 2 and result.bound_tps == pytest.approx(400)
    assert result.efficiency == pytest.approx(0.25)


def test_summary_of_a_timed_out_run() -> None:
    ctx = _context("--timeout-sec", "1")
    spec = modes.run_names(ctx.options, "async", "cpu", "x")
    collector = _collector([FakeCompletion(0, 0, b"k", 1.0, 1.5)])
    result = modes.summarize(
        spec, ctx, collector, 4, {}, wall=2.0, started=0.0, profile_files=[], error=None
    )
    assert not result.complete and not result.interrupted
    assert result.missing == 3
    assert "1 of 4" in (result.error or "") and "--timeout-sec" in (result.error or "")
    early = modes.summarize(
        spec, ctx, collector, 4, {}, wall=0.2, started=0.0, profile_files=[], error=None
    )
    assert early.interrupted


def test_summary_of_a_failed_run_has_no_numbers() -> None:
    ctx = _context()
    spec = modes.run_names(ctx.options, "async", "sleep", "x")
    collector = modes._Collector(Progress(1, "t", enabled=False))
    result = modes.summarize(
        spec,
        ctx,
        collector,
        4,
        {},
        wall=0.1,
        started=0.0,
        profile_files=[],
        error="ValueError: boom",
    )
    assert not result.complete and result.error == "ValueError: boom"
    assert math.isnan(result.throughput_tps) and math.isnan(result.join_time_sec)
