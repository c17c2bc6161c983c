"""Running one mode on one workload: prepare the topic, consume with ParallelConsumer, measure.

The same code path drives baseline, async and process; only the engine name and the handler
flavour (bench/workloads.py) differ, so the three modes are compared like for like.
"""

from __future__ import annotations

import functools
import logging
import math
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bounds, profiling, stats, topics, workloads
from bench.cli import BenchOptions
from bench.progress import Progress
from bench.results import RunResult
from pyrallel_consumer.config import usable_cores

log = logging.getLogger("bench")

# tansu holds every group join for about session.timeout.ms / 2 (design.md, Brokers).
TANSU_SESSION_TIMEOUT_MS = 6000
DRAIN_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class RunSpec:
    """Names of one run: which mode, which workload, which topic and group."""

    mode: str
    workload: str
    topic: str
    group_id: str
    profile_stem: str  # pyrallel-<mode>[-<workload>]


@dataclass
class RunContext:
    """What every run of one invocation shares."""

    options: BenchOptions
    bootstrap_servers: str
    broker_kind: str  # kafka | tansu | external
    io_address: tuple[str, int] | None
    cpu_service_s: float | None
    cores: int
    kernel_releases_gil: bool
    profile: profiling.ProfileSettings | None = None
    notes: list[str] = field(default_factory=list)


def run_names(options: BenchOptions, mode: str, workload: str, run_id: str) -> RunSpec:
    """Topic and group names; with --workload all both carry the workload as a suffix.

    Without --skip-reset the group name also carries a per-invocation id: a group reused across
    a topic's delete and re-create would resume from offsets of the deleted topic (tansu does
    not forget them), and the run would wait for records that never come.
    """
    suffix = f"-{workload}" if options.workload == "all" else ""
    topic = f"{options.topic_prefix}-{mode}{suffix}"
    group = f"{options.topic_prefix}-{mode}{suffix}-group"
    if not options.skip_reset:
        group += f"-{run_id}"
    stem = f"pyrallel-{mode}{suffix}"
    return RunSpec(mode, workload, topic, group, stem)


def kafka_config(ctx: RunContext, group_id: str) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": ctx.bootstrap_servers,
        "group.id": group_id,
        "auto.offset.reset": "earliest",
    }
    if ctx.broker_kind == "tansu":
        config["session.timeout.ms"] = TANSU_SESSION_TIMEOUT_MS
        config["heartbeat.interval.ms"] = 1000
    config.update(dict(ctx.options.kafka_config))  # the user's --kafka-config wins
    return config


def prepare_topic(spec: RunSpec, ctx: RunContext) -> int:
    """Reset (unless --skip-reset) and fill the topic; returns the records produced."""
    opts = ctx.options
    topics.reset_topic(
        ctx.bootstrap_servers,
        spec.topic,
        opts.num_partitions,
        opts.timeout_sec,
        delete_first=not opts.skip_reset,
    )
    return topics.produce_records(
        ctx.bootstrap_servers, spec.topic, opts.num_messages, opts.num_keys, opts.timeout_sec
    )


class _Collector:
    """on_complete / on_assign callbacks; both run on the thread that called run()."""

    def __init__(self, progress: Progress) -> None:
        self.samples: list[stats.CompletionSample] = []
        self.failed = 0
        self.first_assign_at: float | None = None
        self._progress = progress

    def on_complete(self, completion: Any) -> None:
        ok = bool(completion.ok)
        if not ok:
            self.failed += 1
        self.samples.append(
            stats.CompletionSample(
                completion.partition,
                completion.offset,
                completion.key,
                completion.received_at,
                completion.completed_at,
                ok,
            )
        )
        self._progress.advance()

    def on_assign(self, partitions: Sequence[tuple[str, int]]) -> None:
        if self.first_assign_at is None and partitions:
            self.first_assign_at = time.monotonic()


def _engine_kwargs(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    opts = ctx.options
    # --timeout-sec bounds the whole run: when it expires, in-flight records are abandoned after
    # a short drain instead of the library's default 30 s (the benchmark is at-least-once and
    # its topics are throwaway, so nothing of value is lost).
    kwargs: dict[str, Any] = {
        "max_in_flight": opts.max_in_flight,
        "drain_timeout_s": DRAIN_TIMEOUT_S,
    }
    if spec.mode == "async" and opts.concurrency is not None:
        kwargs["concurrency"] = opts.concurrency
    elif spec.mode == "async" and spec.workload == "cpu":
        # The GIL-free kernel wants about two threads per core: one hashing while the other
        # waits for the GIL to report. Measured on 2 cores (20,000 records, 500 iterations):
        # 32 threads 1.2x baseline, 2 threads 1.6x, 4 threads 1.7x.
        kwargs["concurrency"] = 2 * ctx.cores
    if spec.mode == "process":
        if opts.workers is not None:
            kwargs["workers"] = opts.workers
        if opts.worker_concurrency is not None:
            kwargs["worker_concurrency"] = opts.worker_concurrency
        elif spec.workload == "cpu":
            # Same reason as above, per worker: 16 threads 1.66x baseline, 2 threads 1.78x.
            kwargs["worker_concurrency"] = 2
        if ctx.profile is not None and opts.profile_process_workers:
            kwargs["worker_init"] = functools.partial(
                profiling.start_worker_profile, ctx.profile.clock
            )
            kwargs["worker_exit"] = functools.partial(
                profiling.stop_worker_profile, str(ctx.profile.directory), spec.profile_stem
            )
    return kwargs


def _consume(
    spec: RunSpec,
    ctx: RunContext,
    handler: Callable[..., Any],
    collector: _Collector,
    expected: int,
) -> tuple[int, dict[str, Any]]:
    from pyrallel_consumer import ParallelConsumer

    opts = ctx.options
    consumer = ParallelConsumer(
        kafka_config(ctx, spec.group_id),
        topics=[spec.topic],
        handler=handler,
        engine=spec.mode,
        ordering=opts.ordering,
        on_complete=collector.on_complete,
        on_assign=collector.on_assign,
        **_engine_kwargs(spec, ctx),
    )
    with consumer:
        processed = consumer.run(max_records=expected, timeout=opts.timeout_sec)
        try:
            engine_stats = dict(consumer.stats())
        except Exception:  # stats are informative only; never lose a result over them
            engine_stats = {}
    return processed, engine_stats


def engine_shape(
    mode: str, opts: BenchOptions, engine_stats: dict[str, Any], cores: int
) -> bounds.EngineShape:
    """The engine's real limits: what stats() reports, else the option, else the library's
    documented default (workers = cores, worker_concurrency = 16, async concurrency <=
    max_in_flight)."""

    def pick(name: str, option: int | None, default: int) -> int:
        for source in (engine_stats.get("engine_info"), engine_stats):
            if isinstance(source, dict) and isinstance(source.get(name), int):
                return int(source[name])
        return option if option is not None else default

    return bounds.EngineShape(
        mode=mode,
        max_in_flight=opts.max_in_flight,
        concurrency=pick("concurrency", opts.concurrency, opts.max_in_flight),
        workers=pick("workers", opts.workers, cores),
        worker_concurrency=pick("worker_concurrency", opts.worker_concurrency, 16),
    )


def run_mode(spec: RunSpec, ctx: RunContext, expected: int) -> RunResult:
    """Consume `expected` records of spec.topic with spec.mode and measure them."""
    opts = ctx.options
    handler = workloads.make_handler(
        spec.workload,
        spec.mode,
        sleep_ms=opts.worker_sleep_ms,
        cpu_iterations=opts.worker_cpu_iterations,
        io_sleep_ms=opts.worker_io_sleep_ms,
        io_address=ctx.io_address,
    )
    progress = Progress(expected, f"{spec.mode}/{spec.workload}", Progress.wanted(opts.no_progress))
    collector = _Collector(progress)
    profile_files: list[str] = []
    error: str | None = None
    engine_stats: dict[str, Any] = {}
    started = time.monotonic()
    try:
        with progress:
            if ctx.profile is not None:
                path = ctx.profile.directory / f"{spec.profile_stem}.prof"
                profiling.clear_worker_profiles(ctx.profile.directory, spec.profile_stem)
                with profiling.profiled(ctx.profile, path, f"{spec.mode}/{spec.workload}"):
                    _, engine_stats = _consume(spec, ctx, handler, collector, expected)
                profile_files.append(str(path))
                profile_files += [
                    str(p)
                    for p in profiling.worker_profiles(ctx.profile.directory, spec.profile_stem)
                ]
            else:
                _, engine_stats = _consume(spec, ctx, handler, collector, expected)
    except Exception as exc:  # a failed run is a result too: record it and go on
        log.debug("run %s/%s failed", spec.mode, spec.workload, exc_info=True)
        error = f"{type(exc).__name__}: {exc}"
        if opts.log_level == "DEBUG":
            traceback.print_exc()
    finally:
        workloads.close_async_connections()
    wall = time.monotonic() - started
    return summarize(
        spec, ctx, collector, expected, engine_stats, wall, started, profile_files, error
    )


def summarize(
    spec: RunSpec,
    ctx: RunContext,
    collector: _Collector,
    expected: int,
    engine_stats: dict[str, Any],
    wall: float,
    started: float,
    profile_files: list[str],
    error: str | None,
) -> RunResult:
    """Turn the collected completions into the run's result record."""
    opts = ctx.options
    samples = collector.samples
    latency = stats.summarize_latencies(s.completed_at - s.received_at for s in samples)
    rate = stats.throughput(samples)
    check = stats.check_correctness(samples, expected, opts.ordering)
    shape = engine_shape(spec.mode, opts, engine_stats, ctx.cores)
    service = workloads.service_time_s(
        spec.workload,
        sleep_ms=opts.worker_sleep_ms,
        io_sleep_ms=opts.worker_io_sleep_ms,
        cpu_service_s=ctx.cpu_service_s,
    )
    bound = bounds.compute_bound(
        shape,
        workload=spec.workload,
        ordering=opts.ordering,
        num_keys=opts.num_keys,
        num_partitions=opts.num_partitions,
        num_messages=expected,
        service_time_s=service,
        cores=ctx.cores,
        kernel_releases_gil=ctx.kernel_releases_gil,
    )
    join = (collector.first_assign_at - started) if collector.first_assign_at else math.nan
    complete = error is None and check.missing == 0 and collector.failed == 0
    # The consumer turns SIGINT into a clean stop, so an interrupted run just returns early:
    # early and short without an error means the user stopped it, not the timeout.
    interrupted = (
        not complete and error is None and collector.failed == 0 and wall < opts.timeout_sec * 0.95
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
        run_type=spec.mode,
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
        wall_time_sec=wall,
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
        profile_files=profile_files,
        engine_stats=_jsonable(engine_stats),
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


def default_cores() -> int:
    return usable_cores()


def profile_settings(opts: BenchOptions) -> profiling.ProfileSettings | None:
    if not opts.profile:
        return None
    return profiling.ProfileSettings(
        directory=Path(opts.profile_dir),
        clock=opts.profile_clock,
        top_n=opts.profile_top_n,
        threads=opts.profile_threads,
        greenlets=opts.profile_greenlets,
    )
