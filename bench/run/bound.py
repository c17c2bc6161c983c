"""The bound of one run as the bench configured it (bench/measure/bounds.py has the formulas):
the engine's real limits, the records' spread over keys and partitions, the stuck record, the
group's members; and the default timeout derived from it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.measure import bounds, pacing
from bench.options import BenchOptions
from bench.run.context import RunContext, RunSpec
from bench.workloads.keys import KeyDistribution
from bench.workloads.stuck import STUCK_KEY_INDEX
from pyrallel_consumer.window import default_lane_cap

# The library's default, for an engine whose stats() do not report its capacity.
_DEFAULT_WORKER_CONCURRENCY = 16
# Joining a group: a few seconds on Apache Kafka and tansu; each extra member may add a
# rebalance round.
JOIN_ALLOWANCE_S = 30.0
JOIN_ALLOWANCE_PER_MEMBER_S = 10.0


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
        lane_cap=pick(
            "max_in_flight_per_lane", default_lane_cap(opts.max_in_flight, opts.batch_size)
        ),
    )


@dataclass(frozen=True)
class RunBound:
    """`bound_tps`: the run's bound (the group's with several members); `one_member_tps`: one
    consumer on the whole run; `chains`: the spread used (hottest chain, stuck record)."""

    bound_tps: float
    parallelism: int
    one_member_tps: float
    chains: bounds.Chains


def run_bound(
    spec: RunSpec,
    ctx: RunContext,
    expected: int,
    engine_stats: Mapping[str, Any],
    engine_options: Mapping[str, Any],
    partition_counts: Mapping[int, int] | None = None,
    *,
    with_stuck: bool = True,
) -> RunBound:
    """The bound of `spec` over `expected` records; `partition_counts` (records per partition,
    from the delivery reports) sharpen the partition-order bound when known."""
    opts = ctx.options
    workload = ctx.workloads[spec.workload]
    batch = opts.batch_size
    # Batch mode: the bound's service time is one call of a full batch; the stuck record takes
    # its stuck time instead of its share of that call.
    service = workload.service_time_s() if batch is None else workload.call_time_s(batch)
    share_s = service if batch is None else service - workload.call_time_s(batch - 1)
    key_counts = KeyDistribution.parse(opts.key_distribution).counts(expected, opts.num_keys)
    if opts.ordering == "partition" and partition_counts:
        hottest = max(partition_counts.values())
        stuck_chain = hottest  # where key-0 landed is not tracked per partition: assume the worst
    else:
        hottest = (
            max(key_counts)
            if opts.ordering == "key"
            else math.ceil(expected / max(1, opts.num_partitions))
        )
        stuck_chain = key_counts[STUCK_KEY_INDEX] if opts.ordering == "key" else hottest
    stuck_extra = max(0.0, opts.stuck_key_ms / 1000 - share_s) if with_stuck else 0.0
    chains = bounds.Chains(hottest, stuck_extra, stuck_chain if stuck_extra else 0)
    shape = engine_shape(spec.engine, opts, engine_stats, engine_options, ctx.cores)
    common: dict[str, Any] = {
        "ordering": opts.ordering,
        "service_time_s": service,
        "cpu_bound": workload.cpu_bound,
        "cores": ctx.cores,
        "releases_gil": workload.releases_gil,
        "batch_size": batch,
    }
    one = bounds.compute_bound(
        shape,
        num_keys=opts.num_keys,
        num_partitions=opts.num_partitions,
        num_messages=expected,
        chains=chains,
        **common,
    )
    members = bounds.effective_members(spec.members, opts.num_partitions)
    if members == 1:
        return RunBound(one.bound_tps, one.parallelism, one.bound_tps, chains)
    # Each member gets its share of partitions, keys and records; the chains and, for CPU
    # work, the machine's cores still cap the group as a whole.
    share = bounds.compute_bound(
        shape,
        num_keys=math.ceil(opts.num_keys / members),
        num_partitions=math.ceil(opts.num_partitions / members),
        num_messages=math.ceil(expected / members),
        **common,
    )
    group = min(
        members * share.bound_tps,
        bounds.chain_limit_tps(
            expected, service, opts.ordering, chains, batch, shape.records_per_lane()
        ),
    )
    if workload.cpu_bound and service > 0:
        group = min(group, ctx.cores * (batch or 1) / service)
    return RunBound(group, members * share.parallelism, one.bound_tps, chains)


def consume_pace_tps(rate: float | None, bound_tps: float) -> float:
    """Records/s a run consumes at most: its bound, or in open loop min(offered rate, bound)
    (it cannot consume faster than the records arrive); an unknown bound gives the rate."""
    if rate is None:
        return bound_tps
    return min(rate, bound_tps) if math.isfinite(bound_tps) and bound_tps > 0 else rate


def warmup_records(spec: RunSpec, ctx: RunContext, bound: RunBound) -> int:
    """Open loop: the warm-up's records, --warmup-s seconds of consuming at min(rate, bound),
    produced at the rate. A mode slower than the rate gets S seconds of its own work, not
    S x rate records: a 3 s warm-up at 5,000/s would be a 75 s backlog for a 200/s mode."""
    if not spec.rate:
        return 0
    return pacing.warmup_records(consume_pace_tps(spec.rate, bound.bound_tps), ctx.options.warmup_s)


def run_timeout(spec: RunSpec, ctx: RunContext, bound: RunBound, records: int) -> float:
    """--timeout-sec, else derived from every record the run consumes (`records`: the
    warm-up's included) at consume_pace_tps (bench.measure.bounds.default_timeout_s)."""
    if ctx.options.timeout_sec is not None:
        return ctx.options.timeout_sec
    allowance = JOIN_ALLOWANCE_S + JOIN_ALLOWANCE_PER_MEMBER_S * (spec.members - 1)
    return bounds.default_timeout_s(
        records, consume_pace_tps(spec.rate, bound.bound_tps), join_allowance_s=allowance
    )
