"""Turning what a run collected into its result record (bench/output/results.py); the scenario
figures (stuck key, open loop, group) are in bench/run/scenario_summary.py."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from bench.measure import bounds, stats
from bench.options import BenchOptions
from bench.output.results import RunResult, jsonable
from bench.run import scenario_summary
from bench.run.bound import consume_pace_tps, run_bound
from bench.run.context import RunContext, RunSpec
from bench.run.phase import Phase
from bench.run.produce import ProducePlan
from bench.workloads.keys import KeyDistribution, hottest_share


def summarize(
    spec: RunSpec,
    ctx: RunContext,
    plan: ProducePlan,
    phase: Phase,
    reference: Phase | None,
    engine_options: Mapping[str, Any],
    timeout_s: float,
    outputs: dict[str, Any] | None = None,
) -> RunResult:
    """The run's result record: latency, throughput, correctness, bound and efficiency, the
    figures of the scenario options used, and `outputs` (bench/run/outputs.py output_figures;
    None without --outputs): a run with an output missing is not complete."""
    opts = ctx.options
    expected = plan.num_messages
    samples = phase.samples
    latency = stats.summarize_latencies(stats.sojourn_times(samples))
    handling = stats.summarize_latencies(stats.handling_times(samples))
    # Open loop: over the measured records' completions, not from their receipt during the
    # warm-up's backlog; and the bound is min(offered, bound), the most an open loop can do.
    rate = stats.completion_throughput(samples) if spec.rate else stats.throughput(samples)
    check = stats.check_correctness(samples, expected, opts.ordering)
    partition_counts = phase.delivered.partition_counts() if phase.delivered else None
    bound = run_bound(spec, ctx, expected, phase.engine_stats, engine_options, partition_counts)
    bound_tps = consume_pace_tps(spec.rate, bound.bound_tps)
    workload = ctx.workloads[spec.workload]
    batch = opts.batch_size
    # Batch mode: the service time is one call of a full batch, as in the bound.
    service = workload.service_time_s() if batch is None else workload.call_time_s(batch)
    error = phase.error
    failed = phase.failed
    complete = error is None and check.missing == 0 and failed == 0
    if complete and outputs is not None and (outputs["missing"] or outputs["error"]):
        complete = False
        error = outputs["error"] or (
            f"{outputs['missing']} of {expected} outputs missing in {outputs['topic']}"
        )
    # The consumer turns SIGINT into a clean stop, so an interrupted run just returns early:
    # early and short without an error means the user stopped it, not the timeout.
    interrupted = not complete and error is None and failed == 0 and phase.wall_s < timeout_s * 0.95
    if not complete and error is None:
        how = (
            "--timeout-sec" if opts.timeout_sec else "derived from the bound; --timeout-sec sets it"
        )
        reason = (
            "stopped early (interrupted)"
            if interrupted
            else f"within the run's timeout of {timeout_s:g} s ({how})"
        )
        error = f"incomplete: {check.unique_processed} of {expected} records processed {reason}" + (
            f"; {failed} failed" if failed else ""
        )
    key_counts = KeyDistribution.parse(opts.key_distribution).counts(expected, opts.num_keys)
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
        join_time_sec=phase.join_time_s(),
        wall_time_sec=phase.wall_s,
        bound_tps=bound_tps,
        bound_parallelism=bound.parallelism,
        service_time_ms=service * 1000,
        efficiency=bounds.efficiency(rate.throughput_tps, bound_tps),
        ordering_violations=check.ordering_violations,
        duplicates=check.duplicates,
        missing=check.missing,
        failed=failed,
        complete=complete,
        interrupted=interrupted,
        timeout_sec=timeout_s,
        key_distribution=opts.key_distribution,
        hottest_key_share=hottest_share(key_counts),
        hottest_partition_share=(
            hottest_share(list(partition_counts.values())) if partition_counts else None
        ),
        members=spec.members,
        rate_tps=spec.rate,
        batch_size=batch,
        calls_tps=_calls_per_s(phase.engine_stats, rate.processing_time_s),
        avg_handler_ms=handling.avg_ms,
        p50_handler_ms=handling.p50_ms,
        p95_handler_ms=handling.p95_ms,
        p99_handler_ms=handling.p99_ms,
        max_handler_ms=handling.max_ms,
        # Per record: a slot (a call of `batch` records) frees every `service` seconds, and
        # no record completes sooner than a call of one record.
        stuck_key=scenario_summary.stuck_key(
            ctx, plan, phase, reference, bound, service / (batch or 1)
        ),
        open_loop=scenario_summary.open_loop(
            spec, ctx, plan, phase, bound, workload.service_time_s()
        ),
        group=scenario_summary.group(spec, ctx, phase, bound, rate.throughput_tps),
        outputs=outputs,
        profile_files=phase.profile_files,
        engine_stats=jsonable(phase.engine_stats),
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
        key_distribution=opts.key_distribution,
        members=spec.members,
        rate_tps=spec.rate,
        batch_size=opts.batch_size,
        error=error,
    )
