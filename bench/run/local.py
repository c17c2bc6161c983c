"""One consumer in this process consumes a phase (the default, `--members 1`).

With an open-loop plan the paced producer runs in a child process and starts when the consumer
gets its first partitions, so the records arrive while the consumer runs, not as a backlog.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from bench.measure import profiling
from bench.output.progress import Progress
from bench.run.collector import Collector
from bench.run.phase import Phase, PhaseSpec
from bench.run.produce import Delivered, OpenLoopProducer
from pyrallel_consumer import stats_json

_WATCH_INTERVAL_S = 0.2


def consume(spec: PhaseSpec, consumer_options: dict[str, Any], no_progress: bool) -> Phase:
    """Run the consumer until spec.to_consume records completed or spec.timeout_s passed."""
    progress = Progress(
        spec.to_consume,
        spec.label,
        Progress.wanted(no_progress),
        warmup=spec.plan.warmup_messages,
    )
    collector = Collector(progress)
    phase = Phase(time.monotonic(), [collector.samples], [collector.assigned_at])
    producer = OpenLoopProducer(spec.plan, spec.timeout_s).start() if spec.plan.rate else None
    try:
        with progress, collector.counting():
            phase.engine_stats = _run_consumer(spec, collector, producer, phase, consumer_options)
    except Exception as exc:  # a failed run is a result too: record it and go on
        phase.error = f"{type(exc).__name__}: {exc}"
    finally:
        if producer is not None and phase.delivered is None:
            phase.delivered = producer.result(timeout_s=5.0)
    return phase.finish()


def _run_consumer(
    spec: PhaseSpec,
    collector: Collector,
    producer: OpenLoopProducer | None,
    phase: Phase,
    consumer_options: dict[str, Any],
) -> dict[str, Any]:
    # Worker hooks and metrics: never engine options.
    options = {**spec.engine_options, **consumer_options}
    consumer = spec.consumer(collector.on_complete, collector.on_assign, options)
    finished = threading.Event()
    if producer is not None:
        collector.on_first_assign.append(producer.begin)
        watcher = threading.Thread(
            target=_watch_producer,
            args=(producer, phase, consumer.stop, finished),
            name="bench-producer-watch",
            daemon=True,
        )
        watcher.start()
    with consumer:
        try:
            consumer.run(max_records=spec.to_consume, timeout=spec.timeout_s)
        finally:
            finished.set()
        try:
            return stats_json(consumer.stats())
        except Exception:  # stats are informative only; never lose a result over them
            return {}


def _watch_producer(
    producer: OpenLoopProducer, phase: Phase, stop: Callable[[], None], finished: threading.Event
) -> None:
    """Keep the producer's report; stop the consumer when producing failed (the records it
    waits for will never come)."""
    while not finished.wait(_WATCH_INTERVAL_S):
        if producer.done():
            delivered: Delivered = producer.result(timeout_s=1.0)
            phase.delivered = delivered
            if delivered.error:
                stop()
            return


def profiled_consume(
    spec: PhaseSpec,
    settings: profiling.ProfileSettings | None,
    stem: str,
    consumer_options: dict[str, Any],
    no_progress: bool,
) -> Phase:
    """consume(), under yappi when --profile is given (one file per mode, per-worker files)."""
    if settings is None:
        return consume(spec, consumer_options, no_progress)
    path = profiling.profile_path(settings.directory, stem)
    profiling.clear_worker_profiles(settings.directory, stem)
    with profiling.profiled(settings, path, spec.label):
        phase = consume(spec, consumer_options, no_progress)
    phase.profile_files.append(str(path))
    workers = profiling.worker_profiles(settings.directory, stem)
    phase.profile_files += [str(p) for p in workers]
    if workers and settings.top_n:
        print(profiling.aggregate_top(workers, settings.top_n, spec.label), end="")
    return phase
