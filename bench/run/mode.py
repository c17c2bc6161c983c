"""Running one mode on one workload: prepare the topic, consume, measure.

The same code path drives every engine; only the engine name and the handler the workload gives
for it differ, so the modes are compared like for like. A run is one consuming phase, or two with
--stuck-key-ms: the second consumes as many fresh records without the stuck one, with the same
group, and gives the reference throughput of the other keys.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import textwrap
import time
from collections.abc import Callable
from typing import Any

from bench.measure import profiling
from bench.output.progress import format_duration
from bench.output.results import RunResult
from bench.output.table import WIDTH
from bench.run import outputs, topics
from bench.run.bound import (
    RunBound,
    consume_pace_tps,
    run_bound,
    run_timeout,
    warmup_records,
)
from bench.run.context import RunContext, RunSpec, kafka_config
from bench.run.floor import measure_floor
from bench.run.local import profiled_consume
from bench.run.members import MemberProfile, consume_group
from bench.run.phase import Phase, PhaseSpec
from bench.run.produce import Delivered, ProducePlan, produce_backlog
from bench.run.summary import failed_result, summarize
from bench.workloads import Handler
from bench.workloads.keys import KeyDistribution
from bench.workloads.stuck import STUCK_KEY_INDEX, with_stuck_record
from pyrallel_consumer.engines.registry import ENGINE_OPTIONS, engine_spec

log = logging.getLogger("bench")

DRAIN_TIMEOUT_S = 1.0
# Producing and topic set-up limit when --timeout-sec is not given.
SETUP_TIMEOUT_S = 120.0
# Engines with worker processes, the ones that take worker_init/worker_exit hooks: what
# --profile-process-workers profiles.


def engine_options(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    """ParallelConsumer options of a run: the workload's preferences, then the user's options.

    Of the capacity options (concurrency, workers, worker_concurrency), each engine gets the
    ones it reads (pyrallel_consumer.engines.registry's ENGINE_OPTIONS); the library refuses
    the others, which would change nothing.
    """
    opts = ctx.options
    # The run's timeout bounds the whole run: when it expires, in-flight records are abandoned
    # after a short drain instead of the library's default 30 s (the benchmark is at-least-once
    # and its topics are throwaway, so nothing of value is lost).
    options: dict[str, Any] = {
        "max_in_flight": opts.max_in_flight,
        "drain_timeout_s": DRAIN_TIMEOUT_S,
    }
    options.update(ctx.workloads[spec.workload].engine_options(ctx.cores))
    given = {
        "concurrency": opts.concurrency,
        "workers": opts.workers,
        "worker_concurrency": opts.worker_concurrency,
    }
    options.update({name: value for name, value in given.items() if value is not None})
    reads = engine_spec(spec.engine).options
    options = {
        name: value
        for name, value in options.items()
        if name not in ENGINE_OPTIONS or name in reads
    }
    if opts.batch_size is not None:
        options["batch_size"] = opts.batch_size
    if opts.commit_interval_s is not None:
        options["commit_interval_s"] = opts.commit_interval_s
    options.update(outputs.consumer_options(spec, ctx))
    return options


def _worker_hooks(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    if (
        ctx.profile is None
        or not ctx.options.profile_process_workers
        or not engine_spec(spec.engine).worker_processes
    ):
        return {}
    return {
        "worker_init": functools.partial(profiling.start_worker_profile, ctx.profile.clock),
        "worker_exit": functools.partial(
            profiling.stop_worker_profile, str(ctx.profile.directory), spec.profile_stem
        ),
    }


def produce_plan(spec: RunSpec, ctx: RunContext, warmup_messages: int = 0) -> ProducePlan:
    """The run's records: --num-messages measured ones, after `warmup_messages` (open loop:
    bench.run.bound.warmup_records)."""
    opts = ctx.options
    return ProducePlan(
        ctx.bootstrap_servers,
        spec.topic,
        opts.num_messages,
        opts.num_keys,
        opts.key_distribution,
        rate=spec.rate,
        warmup_messages=warmup_messages,
    )


def _consume(
    spec: RunSpec, ctx: RunContext, phase_spec: PhaseSpec, backlog: Callable[[], Delivered] | None
) -> Phase:
    if spec.members > 1:
        profile = MemberProfile(ctx.profile, spec.profile_stem) if ctx.profile else None
        return consume_group(phase_spec, profile, ctx.options.no_progress, backlog)
    delivered = backlog() if backlog is not None else None
    phase = profiled_consume(
        phase_spec,
        ctx.profile,
        spec.profile_stem,
        {**_worker_hooks(spec, ctx), "metrics": _metrics(ctx.options.metrics_port)},
        ctx.options.no_progress,
    )
    if delivered is not None:
        phase.delivered = delivered
    return phase


def _phase(
    spec: RunSpec, ctx: RunContext, plan: ProducePlan, handler: Handler, timeout_s: float
) -> Phase:
    """Consume one phase; a closed-loop phase's backlog is produced first (one consumer) or once
    the group settled (several members: bench/run/members.py)."""
    setup_s = ctx.options.timeout_sec or SETUP_TIMEOUT_S
    backlog = None if plan.rate else functools.partial(produce_backlog, plan, setup_s)
    phase_spec = PhaseSpec(
        plan=plan,
        expected=plan.num_messages,
        handler=handler,
        engine=spec.engine,
        ordering=ctx.options.ordering,
        engine_options=engine_options(spec, ctx),
        kafka_config=kafka_config(ctx, spec.group_id),
        timeout_s=timeout_s,
        members=spec.members,
        partitions=ctx.options.num_partitions,
        label=f"{spec.engine}/{spec.workload}",
    )
    return _consume(spec, ctx, phase_spec, backlog)


@functools.cache
def _served_metrics(port: int) -> Any:
    """One ConsumerMetrics for the whole invocation (each mode's consumer takes it over in
    turn), served on loopback from the first run on."""
    from pyrallel_consumer.metrics import ConsumerMetrics, start_metrics_server

    metrics = ConsumerMetrics()
    start_metrics_server(port)
    log.info("Prometheus metrics at http://127.0.0.1:%d/metrics", port)
    return metrics


def _metrics(port: int | None) -> Any:
    return False if port is None else _served_metrics(port)


def stuck_seq(plan: ProducePlan) -> int:
    """Sequence number of the stuck record: the first record of key-0."""
    return plan.seq_base + plan.key_indices().index(STUCK_KEY_INDEX)


def run_mode(spec: RunSpec, ctx: RunContext) -> RunResult:
    """Prepare spec.topic, consume it with spec.engine (and members, rate) and measure it."""
    opts = ctx.options
    workload = ctx.workloads[spec.workload]
    options = engine_options(spec, ctx)
    bound = run_bound(spec, ctx, opts.num_messages, {}, options)
    plan = produce_plan(spec, ctx, warmup_records(spec, ctx, bound))
    timeout = run_timeout(spec, ctx, bound, plan.total_messages)
    print_limits(spec, ctx, bound, timeout, plan)
    batch = opts.batch_size is not None
    handler = workload.batch_handler(spec.engine) if batch else workload.handler(spec.engine)
    stuck_handler = handler
    if opts.stuck_key_ms > 0:
        stuck_handler = with_stuck_record(
            handler, spec.engine, stuck_seq(plan), opts.stuck_key_ms, batch=batch
        )
    setup_s = opts.timeout_sec or SETUP_TIMEOUT_S
    try:
        topics.reset_topic(
            ctx.bootstrap_servers,
            spec.topic,
            opts.num_partitions,
            setup_s,
            delete_first=not opts.skip_reset,
        )
        # Outermost: the stuck record has its output too.
        stuck_handler = outputs.prepare(spec, ctx, stuck_handler, setup_s)
        phase = _phase(spec, ctx, plan, stuck_handler, timeout)
        output_figures = outputs.output_figures(spec, ctx, phase, setup_s)
        if spec.rate and opts.floor and phase.error is None:
            print("   floor: the same records at the same rate, a plain consume loop", flush=True)
            phase.floor = measure_floor(
                plan,
                kafka_config(ctx, spec.group_id),
                opts.num_partitions,
                timeout,
                delete_first=not opts.skip_reset,
            )
    except Exception as exc:  # topic or produce failure: record it, run the rest
        log.debug("setup of %s/%s failed", spec.engine, spec.workload, exc_info=True)
        workload.after_run()
        return failed_result(spec, opts, f"setup failed: {type(exc).__name__}: {exc}")
    reference: Phase | None = None
    try:
        if opts.stuck_key_ms > 0 and phase.error is None:
            print("   reference phase: the same records without the stuck one", flush=True)
            reference = _reference_phase(spec, ctx, plan, handler, options)
    except Exception as exc:  # the first phase still stands; say why the reference is missing
        log.warning("reference phase of %s/%s failed: %s", spec.engine, spec.workload, exc)
        reference = Phase(time.monotonic(), [], [], error=f"{type(exc).__name__}: {exc}")
    finally:
        workload.after_run()
    return summarize(spec, ctx, plan, phase, reference, options, timeout, output_figures)


def _reference_phase(
    spec: RunSpec,
    ctx: RunContext,
    plan: ProducePlan,
    handler: Handler,
    options: dict[str, Any],
) -> Phase:
    """The same records without the stuck one, on a topic and group of their own (suffix
    -ref): the same keys land on the same partitions, and no group is reused, since a rejoin
    of the first phase's group can take long (tansu held it past the timeout with members)."""
    opts = ctx.options
    ref = dataclasses.replace(spec, topic=f"{spec.topic}-ref", group_id=f"{spec.group_id}-ref")
    setup_s = opts.timeout_sec or SETUP_TIMEOUT_S
    topics.reset_topic(
        ctx.bootstrap_servers,
        ref.topic,
        opts.num_partitions,
        setup_s,
        delete_first=not opts.skip_reset,
    )
    # Outputs to its own topic (not checked: the phase is the throughput reference).
    handler = outputs.prepare(ref, ctx, handler, setup_s)
    second = dataclasses.replace(plan, topic=ref.topic, seq_base=opts.num_messages)
    no_stuck = run_bound(ref, ctx, opts.num_messages, {}, options, with_stuck=False)
    timeout = run_timeout(ref, ctx, no_stuck, second.total_messages)
    return _phase(ref, ctx, second, handler, timeout)


def _say(text: str) -> None:
    """One line of the run's preamble, wrapped to the tables' width."""
    print(textwrap.fill(text, WIDTH, initial_indent="   ", subsequent_indent="     "), flush=True)


def print_limits(
    spec: RunSpec, ctx: RunContext, bound: RunBound, timeout: float, plan: ProducePlan
) -> None:
    """Before a run: its bound, the open loop's rate and warm-up, the timeout and the estimated
    duration, each line within WIDTH columns."""
    opts = ctx.options
    extras = []
    if opts.key_distribution != "uniform":
        counts = KeyDistribution.parse(opts.key_distribution).counts(
            opts.num_messages, opts.num_keys
        )
        extras.append(f"hottest key {max(counts) / opts.num_messages:.1%} of records")
    if spec.members > 1:
        extras.append(f"{spec.members} members")
    _say(f"bound {bound.bound_tps:,.1f} records/s" + "".join(f"; {e}" for e in extras))
    if spec.rate:
        warm = plan.warmup_messages
        _say(
            f"open loop: {spec.rate:,g} records/s offered"
            + (f", after a warm-up of {warm:,} records" if warm else "")
        )
        if spec.rate > bound.bound_tps:
            _say(
                "above the bound: this mode cannot keep up"
                + (f"; its warm-up is {opts.warmup_s:g} s of its work at the bound" if warm else "")
            )
    given = opts.timeout_sec is not None
    how = "--timeout-sec" if given else "3 x records / min(offered, bound) + join allowance"
    if not spec.rate and not given:
        how = "3 x records / bound + join allowance"
    _say(f"timeout {timeout:g} s ({how})")
    pace = consume_pace_tps(spec.rate, bound.bound_tps)
    records = f"{plan.total_messages:,} records" + (
        f", {plan.warmup_messages:,} of them warm-up," if plan.warmup_messages else ""
    )
    _say(
        f"estimated duration: {estimate_text(estimated_duration_s(spec, bound, plan))} plus the "
        + ("join" if spec.rate else "join and producing")
        + f" ({records} at {pace:,.0f}/s)"
    )


def estimate_text(seconds: float) -> str:
    """format_duration, but `under 1 s` rather than a `0 s` that reads as no time at all."""
    return "under 1 s" if seconds < 1 else format_duration(seconds)


def estimated_duration_s(spec: RunSpec, bound: RunBound, plan: ProducePlan) -> float:
    """Seconds the run's consuming takes at least: every record it consumes (the warm-up's
    included) at its bound, or at the offered rate when that is lower (an open loop cannot
    consume faster than it produces)."""
    pace = consume_pace_tps(spec.rate, bound.bound_tps)
    return plan.total_messages / pace if pace > 0 and math.isfinite(pace) else 0.0
