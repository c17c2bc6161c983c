"""Running one mode on one workload: prepare the topic, consume with ParallelConsumer, measure.

The same code path drives every engine; only the engine name and the handler the workload gives
for it differ, so the modes are compared like for like.
"""

from __future__ import annotations

import functools
import logging
import time
import traceback
from typing import Any

from bench.measure import profiling
from bench.output.progress import Progress
from bench.output.results import RunResult
from bench.run import topics
from bench.run.collector import Collector
from bench.run.context import RunContext, RunSpec, kafka_config
from bench.run.summary import RunOutcome, summarize
from bench.workloads import Handler

log = logging.getLogger("bench")

DRAIN_TIMEOUT_S = 1.0
# Engines with worker processes, the ones that take worker_init/worker_exit hooks: what
# --profile-process-workers profiles.
WORKER_PROCESS_ENGINES = frozenset({"process"})


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


def engine_options(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    """ParallelConsumer options of a run: the workload's preferences, then the user's options.

    The capacity options (concurrency, workers, worker_concurrency) go to every engine: each
    reads only those that apply to it (pyrallel_consumer.engines.registry.Capacity).
    """
    opts = ctx.options
    # --timeout-sec bounds the whole run: when it expires, in-flight records are abandoned after
    # a short drain instead of the library's default 30 s (the benchmark is at-least-once and
    # its topics are throwaway, so nothing of value is lost).
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
    return options


def _worker_hooks(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    if (
        ctx.profile is None
        or not ctx.options.profile_process_workers
        or spec.engine not in WORKER_PROCESS_ENGINES
    ):
        return {}
    return {
        "worker_init": functools.partial(profiling.start_worker_profile, ctx.profile.clock),
        "worker_exit": functools.partial(
            profiling.stop_worker_profile, str(ctx.profile.directory), spec.profile_stem
        ),
    }


def _consume(
    spec: RunSpec,
    ctx: RunContext,
    handler: Handler,
    collector: Collector,
    expected: int,
    options: dict[str, Any],
) -> dict[str, Any]:
    """Run the consumer until `expected` records completed or the timeout; its stats()."""
    from pyrallel_consumer import ParallelConsumer

    consumer = ParallelConsumer(
        kafka_config(ctx, spec.group_id),
        topics=[spec.topic],
        handler=handler,
        engine=spec.engine,
        ordering=ctx.options.ordering,
        on_complete=collector.on_complete,
        on_assign=collector.on_assign,
        **options,
        **_worker_hooks(spec, ctx),
        metrics=_metrics(ctx.options.metrics_port),
    )
    with consumer:
        consumer.run(max_records=expected, timeout=ctx.options.timeout_sec)
        try:
            return dict(consumer.stats())
        except Exception:  # stats are informative only; never lose a result over them
            return {}


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


def run_mode(spec: RunSpec, ctx: RunContext, expected: int) -> RunResult:
    """Consume `expected` records of spec.topic with spec.engine and measure them."""
    opts = ctx.options
    handler = ctx.workloads[spec.workload].handler(spec.engine)
    label = f"{spec.engine}/{spec.workload}"
    progress = Progress(expected, label, Progress.wanted(opts.no_progress))
    collector = Collector(progress)
    options = engine_options(spec, ctx)
    outcome = RunOutcome(started=time.monotonic(), engine_options=options)
    try:
        with progress:
            if ctx.profile is not None:
                path = profiling.profile_path(ctx.profile.directory, spec.profile_stem)
                profiling.clear_worker_profiles(ctx.profile.directory, spec.profile_stem)
                with profiling.profiled(ctx.profile, path, label):
                    outcome.engine_stats = _consume(
                        spec, ctx, handler, collector, expected, options
                    )
                outcome.profile_files.append(str(path))
                outcome.profile_files += [
                    str(p)
                    for p in profiling.worker_profiles(ctx.profile.directory, spec.profile_stem)
                ]
            else:
                outcome.engine_stats = _consume(spec, ctx, handler, collector, expected, options)
    except Exception as exc:  # a failed run is a result too: record it and go on
        log.debug("run %s failed", label, exc_info=True)
        outcome.error = f"{type(exc).__name__}: {exc}"
        if opts.log_level == "DEBUG":
            traceback.print_exc()
    finally:
        ctx.workloads[spec.workload].after_run()
    outcome.wall_s = time.monotonic() - outcome.started
    return summarize(spec, ctx, collector, expected, outcome)
