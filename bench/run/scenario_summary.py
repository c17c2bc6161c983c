"""The scenario figures of a run's result, each next to its bound: the stuck key
(`stuck_key`), the open loop (`open_loop`) and the group of members (`group`); None when the
option was not used."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from bench.measure import bounds, pacing, scenarios, stats
from bench.options import BenchOptions
from bench.output.results import RunResult
from bench.run.bound import RunBound
from bench.run.context import RunContext, RunSpec
from bench.run.phase import Phase
from bench.run.produce import ProducePlan, producer_settings
from bench.workloads.stuck import STUCK_KEY, STUCK_KEY_INDEX

# librdkafka's defaults of the consumer settings that shape fetching (CONFIGURATION.md).
FETCH_SETTINGS = {
    "fetch.wait.max.ms": 500,
    "fetch.min.bytes": 1,
    "fetch.max.bytes": 52428800,
    "queued.min.messages": 100000,
}
REFERENCE_METHOD = (
    "second phase: the same records without the stuck one, on a topic and group of their own"
)


def client_settings(options: BenchOptions) -> dict[str, Any]:
    """The librdkafka settings of the bench's clients, for the results' metadata: the
    producer's (backlog and open loop) and the consumer's that shape latency."""
    config = {key: value for key, value in options.kafka_config}
    backlog = ProducePlan("", "", 0, 1)
    return {
        "producer_backlog": producer_settings(backlog),
        "producer_open_loop": producer_settings(dataclasses.replace(backlog, rate=1.0)),
        "consumer": {
            key: config.get(key, f"{default} (librdkafka default)")
            for key, default in FETCH_SETTINGS.items()
        },
    }


def stuck_key(
    ctx: RunContext,
    plan: ProducePlan,
    phase: Phase,
    reference: Phase | None,
    bound: RunBound,
    service_s: float,
) -> dict[str, Any] | None:
    """The other keys' throughput while the stuck record was in progress, the same keys'
    throughput in the reference phase, their ratio, and the others' bound while one slot is
    held (parallelism - 1 over the service time)."""
    opts = ctx.options
    if opts.stuck_key_ms <= 0 or phase.delivered is None:
        return None
    index = plan.key_indices().index(STUCK_KEY_INDEX)
    delivered = phase.delivered
    known = index < len(delivered.partitions)  # a producer that failed reports no record
    ident = (delivered.partitions[index], delivered.offsets[index]) if known else (-1, -1)
    window = scenarios.stuck_window(phase.samples, ident, STUCK_KEY)
    reference_tps = (
        scenarios.others_throughput(reference.samples, STUCK_KEY) if reference else math.nan
    )
    others_bound = max(0, bound.parallelism - 1) / service_s if service_s > 0 else math.inf
    return {
        "stuck_ms": opts.stuck_key_ms,
        "key": STUCK_KEY.decode(),
        "partition": ident[0],
        "offset": ident[1],
        "window_sec": window.window_s,
        "others_completed": window.others,
        "others_tps": window.others_tps,
        "others_bound_tps": others_bound,
        "reference_tps": reference_tps,
        "ratio": bounds.efficiency(window.others_tps, reference_tps),
        "reference_method": REFERENCE_METHOD,
        "reference_complete": (
            reference is not None and reference.error is None and reference.failed == 0
        ),
        "reference_error": reference.error if reference is not None else None,
    }


def open_loop(
    spec: RunSpec,
    ctx: RunContext,
    plan: ProducePlan,
    phase: Phase,
    bound: RunBound,
    service_s: float,
) -> dict[str, Any] | None:
    """End-to-end latency (send -> completion), offered vs achieved rate and whether the
    consumer kept up, over the measured records (the warm-up's left out); beside it the floor
    (a plain consume loop's send -> receipt at the same rate) and the consumer's own share
    (receipt -> done), with the producer's and consumer's settings that shape latency. Bounds:
    the achieved rate cannot exceed min(offered, bound); no record completes sooner than its
    service time."""
    if spec.rate is None:
        return None
    delivered = phase.delivered
    sent_at = delivered.sent_at_by_record() if delivered else {}
    e2e = scenarios.end_to_end_ms(phase.samples, sent_at)
    offered = pacing.offered_rate(list(sent_at.values()))
    records = scenarios.first_completions(phase.samples)
    achieved = (
        pacing.achieved_rate(
            len(records), min(sent_at.values()), max(s.completed_at for s in records)
        )
        if records and sent_at
        else math.nan
    )
    config = {key: value for key, value in ctx.options.kafka_config}
    own = stats.summarize_latencies(stats.sojourn_times(records))
    floor = phase.floor
    nan = math.nan
    return {
        "target_tps": spec.rate,
        "warmup_sec": ctx.options.warmup_s,
        "warmup_records": phase.warmup_records,
        "offered_tps": offered,
        "achieved_tps": achieved,
        "achieved_bound_tps": min(spec.rate, bound.bound_tps),
        "consumer_bound_tps": bound.bound_tps,
        "kept_up": pacing.kept_up(offered, achieved),
        "e2e_avg_ms": e2e.avg_ms,
        "e2e_p50_ms": e2e.p50_ms,
        "e2e_p95_ms": e2e.p95_ms,
        "e2e_p99_ms": e2e.p99_ms,
        "e2e_max_ms": e2e.max_ms,
        "e2e_bound_ms": service_s * 1000,
        "consumer_p50_ms": own.p50_ms,
        "consumer_p95_ms": own.p95_ms,
        "consumer_p99_ms": own.p99_ms,
        "consumer_max_ms": own.max_ms,
        "floor_e2e_p50_ms": floor.e2e.p50_ms if floor else nan,
        "floor_e2e_p95_ms": floor.e2e.p95_ms if floor else nan,
        "floor_e2e_p99_ms": floor.e2e.p99_ms if floor else nan,
        "floor_e2e_max_ms": floor.e2e.max_ms if floor else nan,
        "floor_records": floor.records if floor else 0,
        "floor_error": floor.error if floor else None,
        "producer_behind_ms": delivered.behind_s * 1000 if delivered else None,
        "producer_linger_ms": plan.linger_ms,
        "producer_settings": producer_settings(plan),
        "consumer_fetch": {
            key: config.get(key, f"{default} (librdkafka default)")
            for key, default in FETCH_SETTINGS.items()
        },
    }


def group(
    spec: RunSpec, ctx: RunContext, phase: Phase, bound: RunBound, aggregate_tps: float
) -> dict[str, Any] | None:
    """Per-member records and throughput, join and rebalance time, and the scaling efficiency
    against (members that can get a partition) x one member's bound."""
    if spec.members <= 1:
        return None
    shares = scenarios.member_shares(phase.member_samples)
    effective = bounds.effective_members(spec.members, ctx.options.num_partitions)
    config = {key: value for key, value in ctx.options.kafka_config}
    return {
        "members": spec.members,
        "effective_members": effective,
        "group_protocol": config.get("group.protocol", "classic"),
        "member_records": [s.records for s in shares],
        "member_tps": [s.throughput_tps for s in shares],
        "member_join_sec": [
            (times[0] - phase.started) if times else None for times in phase.assigned_at
        ],
        "assignments": sum(len(times) for times in phase.assigned_at),
        "rebalance_time_sec": phase.rebalance_time_s(),
        "aggregate_tps": aggregate_tps,
        "group_bound_tps": bound.bound_tps,
        "one_member_bound_tps": bound.one_member_tps,
        "scaling_efficiency": scenarios.scaling_efficiency(
            aggregate_tps, bound.one_member_tps, effective
        ),
    }


def relate_to_one_member(results: list[RunResult]) -> None:
    """Add `speedup_vs_one_member` to each group result whose one-member twin (same mode,
    workload and rate) ran in the same invocation: aggregate / that run's throughput."""
    single = {
        (r.run_type, r.workload, r.rate_tps): r.throughput_tps for r in results if r.members == 1
    }
    for r in results:
        if r.group is not None:
            one = single.get((r.run_type, r.workload, r.rate_tps))
            if one is not None:
                r.group["one_member_tps"] = one
                r.group["speedup_vs_one_member"] = bounds.efficiency(r.throughput_tps, one)
