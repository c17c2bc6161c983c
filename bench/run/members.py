"""`--members N`: N consumer processes of the mode in one consumer group consume a phase.

This is how users scale past one process or machine: the group protocol spreads the partitions
over the members (classic or, with `--kafka-config group.protocol=consumer` on Apache Kafka,
KIP-848). Each member is a spawned process running ParallelConsumer with the run's engine; it
sends its assignments and progress to this process while it runs, and its completions when it
stops. This process stops every member once the group completed the expected records, or at
the run's timeout.

The records are produced once the group has settled (every member that can get a partition has
one, and no assignment came for SETTLE_S): the backlog then, or the open-loop producer starts.
Otherwise the first member to join would consume alone until the others join, and the group's
throughput would measure the join, which is reported apart (join and rebalance time).
"""

from __future__ import annotations

import math
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bench.measure import profiling
from bench.measure.stats import CompletionSample
from bench.output.progress import Progress
from bench.output.results import jsonable
from bench.run.collector import counting
from bench.run.phase import Phase, PhaseSpec
from bench.run.produce import Delivered, OpenLoopProducer
from pyrallel_consumer import stats_json

_POLL_S = 0.2
# After the run's timeout, members get this long to drain, commit and report before a kill.
_STOP_GRACE_S = 30.0
SETTLE_S = 1.0


@dataclass(frozen=True)
class MemberProfile:
    settings: profiling.ProfileSettings
    stem: str  # pyrallel-<mode>[-<workload>]; each member adds -member-<i>


def _member_main(
    spec: PhaseSpec, index: int, events: Any, stop: Any, profile: MemberProfile | None
) -> None:
    """Body of member `index`: consume until told to stop, then report the completions."""
    samples: list[CompletionSample] = []

    def on_assign(partitions: Sequence[tuple[str, int]]) -> None:
        if partitions:
            events.put(("assign", index, time.monotonic()))

    stats: dict[str, Any] = {}
    error = None
    # The last completions of a phase come with no callback after them: counted on a thread.
    with counting(samples, lambda count: events.put(("progress", index, count))):
        try:
            consumer = spec.consumer(
                samples.append,  # as in collector.py: no Python call per record
                on_assign,
                member_options(spec.engine_options, index),
            )

            def stop_when_told() -> None:
                stop.wait()
                consumer.stop()

            threading.Thread(target=stop_when_told, daemon=True).start()
            if profile is None:
                consumer.run(timeout=spec.timeout_s + _STOP_GRACE_S)
            else:
                stem = f"{profile.stem}-member-{index}"
                path = profiling.profile_path(profile.settings.directory, stem)
                with profiling.profiled(profile.settings, path, f"{spec.label} member {index}"):
                    consumer.run(timeout=spec.timeout_s + _STOP_GRACE_S)
            stats = stats_json(consumer.stats())
        except Exception as exc:  # reported to the parent, which records it as the run's error
            error = f"member {index}: {type(exc).__name__}: {exc}"
    events.put(("done", index, samples, jsonable(stats), error))


def member_options(engine_options: Mapping[str, Any], index: int) -> dict[str, Any]:
    """The ParallelConsumer options of member `index`: the run's, with a transactional id of
    its own (--exactly-once: two running members must not share one, or one fences the
    other)."""
    options = dict(engine_options)
    if options.get("transactional_id"):
        options["transactional_id"] = f"{options['transactional_id']}-member-{index}"
    return options


# Counters of stats() added over the members (--outputs; the rest of engine_stats stays the
# first member's).
SUMMED_COUNTERS = (
    "outputs_acknowledged",
    "outputs_refused",
    "transactions_committed",
    "transactions_aborted",
)


def add_member_counters(engine_stats: dict[str, Any], member_stats: Mapping[str, Any]) -> None:
    """Add another member's SUMMED_COUNTERS (those it has) to the run's engine_stats."""
    for name in SUMMED_COUNTERS:
        value = member_stats.get(name)
        if isinstance(value, int):
            engine_stats[name] = engine_stats.get(name, 0) + value


def add_batch_counts(engine_stats: dict[str, Any], batches: dict[str, int]) -> None:
    """Batch mode: count every member's batches and calls in the run's engine_stats (the rest
    of it stays the first member's)."""
    total = engine_stats.setdefault("batches", {})
    for name, value in batches.items():
        total[name] = total.get(name, 0) + value


def consume_group(
    spec: PhaseSpec,
    profile: MemberProfile | None,
    no_progress: bool,
    backlog: Callable[[], Delivered] | None = None,
) -> Phase:
    """Run spec.members member processes until the group completed spec.expected records;
    `backlog` produces the records of a closed-loop phase once the group settled."""
    context = multiprocessing.get_context("spawn")
    events: Any = context.Queue()
    stop = context.Event()
    members = [
        # Not daemonic: a member running the process engine starts worker processes itself.
        context.Process(
            target=_member_main,
            args=(spec, i, events, stop, profile),
            name=f"bench-member-{i}",
        )
        for i in range(spec.members)
    ]
    phase = Phase(time.monotonic(), [[] for _ in members], [[] for _ in members])
    producer = OpenLoopProducer(spec.plan, spec.timeout_s).start() if spec.plan.rate else None
    for member in members:
        member.start()
    try:
        with Progress(
            spec.to_consume,
            spec.label,
            Progress.wanted(no_progress),
            warmup=spec.plan.warmup_messages,
        ) as progress:
            _supervise(spec, phase, members, events, stop, producer, backlog, progress)
    finally:
        stop.set()
        for member in members:
            member.join(_STOP_GRACE_S)
            if member.is_alive():
                member.kill()
                member.join()
        if producer is not None:
            phase.delivered = producer.result(timeout_s=5.0)
    return phase.finish()


def _supervise(
    spec: PhaseSpec,
    phase: Phase,
    members: list[Any],
    events: Any,
    stop: Any,
    producer: OpenLoopProducer | None,
    backlog: Callable[[], Delivered] | None,
    progress: Progress,
) -> None:
    deadline = phase.started + spec.timeout_s
    needed = min(spec.members, spec.partitions)
    produced = False
    last_assign = math.inf
    completed = 0
    done: set[int] = set()
    errors: list[str] = []
    while len(done) < len(members):
        try:
            event = events.get(timeout=_POLL_S)
        except queue.Empty:
            event = None
        now = time.monotonic()
        if event is not None:
            kind, index = event[0], event[1]
            if kind == "progress":
                completed += event[2]
                progress.advance(event[2])
            elif kind == "assign":
                phase.assigned_at[index].append(event[2])
                last_assign = event[2]
            elif kind == "done":
                done.add(index)
                phase.member_samples[index] = event[2]
                if not phase.engine_stats:
                    phase.engine_stats = event[3]
                else:
                    add_member_counters(phase.engine_stats, event[3])
                    if "batches" in event[3]:
                        add_batch_counts(phase.engine_stats, event[3]["batches"])
                if event[4]:
                    errors.append(event[4])
        settled = sum(1 for a in phase.assigned_at if a) >= needed and now - last_assign >= SETTLE_S
        if settled and not produced:
            produced = True
            if producer is not None:
                producer.begin()
            elif backlog is not None:
                try:
                    phase.delivered = backlog()
                except Exception as exc:  # the members would wait for records never produced
                    errors.append(f"producing failed: {type(exc).__name__}: {exc}")
        if completed >= spec.to_consume or now >= deadline or errors:
            stop.set()
        if producer is not None and producer.done() and phase.delivered is None:
            phase.delivered = producer.result(timeout_s=1.0)
            if phase.delivered.error:
                stop.set()
        if now >= deadline + _STOP_GRACE_S:
            errors.append("members did not stop within the grace period after the timeout")
            break
        for i, member in enumerate(members):
            if i not in done and not member.is_alive() and events.empty():
                done.add(i)
                errors.append(f"member {i} exited with status {member.exitcode} without reporting")
    if errors:
        phase.error = "; ".join(errors)
