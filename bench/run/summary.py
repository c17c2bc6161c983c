"""Turning what a run collected into its result record (bench/output/results.py)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.cli import BenchOptions
from bench.measure import bounds, stats
from bench.output.results import RunResult
from bench.run.collector import Collector
from bench.run.context import RunContext, RunSpec

# The library's default, for an engine whose stats() do not report its capacity.
_DEFAULT_WORKER_CONCURRENCY = 16


@dataclass
class RunOutcome:
    """What happened while consuming, apart from the completions (those are in the Collector)."""

    started: float  # time.monotonic() at the start of the run
    engine_options: Mapping[str, Any]  # what ParallelConsumer was given
    wall_s: float = math.nan  # run start -> run() returned (join + processing + shutdown)
    engine_stats: dict[str, Any] = field(default_factory=dict)
    profile_files: list[str] = field(default_factory=list)
    error: str | None = None


def engine_shape(
    engine: str,
    opts: BenchOptions,
    engine_stats: Mapping[str, Any],
    engine_options: Mapping[str, Any],
    cores: int,
) -> bounds.EngineShape:
    """The engine's real limits: what stats() reports, else the option it was given, else the
    library's documented default (workers = cores, worker_concurrency = 16, async concurrency
    <= max_in_flight)."""

    def pick(name: str, default: int) -> int:
        for source in (engine_stats.get("engine_info"), engine_stats):
            if isinstance(source, dict) and isinstance(source.get(name), int):
                return int(source[name])
        given = engine_options.get(name)
        return given if isinstance(given, int) else default

    return bounds.EngineShape(
        engine=engine,
        max_in_flight=opts.max_in_flight,
        concurrency=pick("concurrency", opts.max_in_flight),
        workers=pick("workers", cores),
        worker_concurrency=pick("worker_concurrency", _DEFAULT_WORKER_CONCURRENCY),
    )


def summarize(
    spec: RunSpec, ctx: RunContext, collector: Collector, expected: int, outcome: RunOutcome
) -> RunResult:
    """The run's result record: latency, throughput, correctness, bound and efficiency."""
    opts = ctx.options
    workload = ctx.workloads[spec.workload]
    samples = collector.samples
    latency = stats.summarize_latencies(s.completed_at - s.received_at for s in samples)
    rate = stats.throughput(samples)
    check = stats.check_correctness(samples, expected, opts.ordering)
    shape = engine_shape(spec.engine, opts, outcome.engine_stats, outcome.engine_options, ctx.cores)
    batch = opts.batch_size
    # Batch mode: the bound's service time is one call of a full batch.
    service = workload.service_time_s() if batch is None else workload.call_time_s(batch)
    bound = bounds.compute_bound(
        shape,
        ordering=opts.ordering,
        num_keys=opts.num_keys,
        num_partitions=opts.num_partitions,
        num_messages=expected,
        service_time_s=service,
        cpu_bound=workload.cpu_bound,
        cores=ctx.cores,
        releases_gil=workload.releases_gil,
        batch_size=batch,
    )
    first_assign = collector.first_assign_at
    join = (first_assign - outcome.started) if first_assign else math.nan
    error = outcome.error
    complete = error is None and check.missing == 0 and collector.failed == 0
    # The consumer turns SIGINT into a clean stop, so an interrupted run just returns early:
    # early and short without an error means the user stopped it, not the timeout.
    interrupted = (
        not complete
        and error is None
        and collector.failed == 0
        and outcome.wall_s < opts.timeout_sec * 0.95
    )
    if not complete and error is None:
        reason = (
            "stopped early (interrupted)"
            if interrupted
            else f"within --timeout-sec {opts.timeout_sec:g}"
        )
        error = f"incomplete: {check.unique_processed} of {expected} records processed {reason}" + (
            f"; {collector.failed} failed" if collector.failed else ""
        )
    return RunResult(
        run_type=spec.engine,
        workload=spec.workload,
        topic=spec.topic,
        group_id=spec.group_id,
        ordering=opts.ordering,
        messages_expected=expected,
        messages_processed=check.unique_processed,
        total_time_sec=rate.processing_time_s,
        throughput_tps=rate.throughput_tps,
        avg_processing_ms=latency.avg_ms,
        p50_processing_ms=latency.p50_ms,
        p95_processing_ms=latency.p95_ms,
        p99_processing_ms=latency.p99_ms,
        max_processing_ms=latency.max_ms,
        join_time_sec=join,
        wall_time_sec=outcome.wall_s,
        bound_tps=bound.bound_tps,
        bound_parallelism=bound.parallelism,
        service_time_ms=service * 1000,
        efficiency=bounds.efficiency(rate.throughput_tps, bound.bound_tps),
        ordering_violations=check.ordering_violations,
        duplicates=check.duplicates,
        missing=check.missing,
        failed=collector.failed,
        complete=complete,
        interrupted=interrupted,
        batch_size=batch,
        calls_tps=_calls_per_s(outcome.engine_stats, rate.processing_time_s),
        profile_files=outcome.profile_files,
        engine_stats=_jsonable(outcome.engine_stats),
        error=error,
    )


def _calls_per_s(engine_stats: Mapping[str, Any], seconds: float) -> float:
    """Handler calls per second in batch mode (stats()["batches"]); NaN otherwise."""
    batches = engine_stats.get("batches")
    if not isinstance(batches, dict) or not seconds or not math.isfinite(seconds):
        return math.nan
    return float(batches.get("calls", 0)) / seconds


def failed_result(spec: RunSpec, opts: BenchOptions, error: str) -> RunResult:
    """The record of a run that never consumed (its topic could not be prepared)."""
    nan = math.nan
    return RunResult(
        run_type=spec.engine,
        workload=spec.workload,
        topic=spec.topic,
        group_id=spec.group_id,
        ordering=opts.ordering,
        messages_expected=opts.num_messages,
        messages_processed=0,
        total_time_sec=nan,
        throughput_tps=nan,
        avg_processing_ms=nan,
        p50_processing_ms=nan,
        p95_processing_ms=nan,
        p99_processing_ms=nan,
        max_processing_ms=nan,
        join_time_sec=nan,
        wall_time_sec=nan,
        bound_tps=nan,
        bound_parallelism=0,
        service_time_ms=nan,
        efficiency=nan,
        ordering_violations=0,
        duplicates=0,
        missing=opts.num_messages,
        failed=0,
        complete=False,
        error=error,
    )


def _jsonable(value: Any) -> Any:
    """stats() may hold anything; keep what JSON can carry."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)
