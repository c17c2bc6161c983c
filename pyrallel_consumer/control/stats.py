"""Counters and the stats() snapshot.

Ownership: the counters and the structures read here are written by the control thread only,
and only the control thread calls `snapshot`: it publishes the result (a new dict each time,
never changed afterwards), and stats() on other threads returns a copy of the last one
published. Reading the live structures from another thread was rejected: a deque indexed while
the control thread pops it raises, and the numbers of one reading would not agree with each
other. `snapshot` calls no librdkafka function, because those were seen to block for over a
minute during a rebalance.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NotRequired, TypedDict

from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.topic_partition import TopicPartition


@dataclass(slots=True)
class Counters:
    """Records since start, by what happened to them (README glossary)."""

    received: int = 0
    completed: int = 0  # succeeded, skipped or dead-lettered: committable
    retries: int = 0
    failed: int = 0  # failed every attempt; then skipped, dead-lettered or the consumer stopped
    skipped: int = 0  # failed and given up under on_failure='skip'
    dead_lettered: int = 0  # failed and acknowledged by the dead-letter topic
    cancelled: int = 0  # not started when their partition was revoked or the run stopped
    abandoned: int = 0  # given up without a verdict (a worker given up; in flight at the end)
    already_completed: int = 0  # completed before a restart or rebalance, per commit metadata
    fenced: int = 0  # reported after their partition was revoked; the new owner redoes them
    # outputs=True: the handler's outputs handed to the output producer, acknowledged by the
    # broker, refused (at once or in their delivery report). Outputs, not records.
    outputs_produced: int = 0
    outputs_acknowledged: int = 0
    outputs_refused: int = 0
    # transactional_id: transactions committed, and aborted (their records were redone).
    transactions_committed: int = 0
    transactions_aborted: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class PartitionStats(TypedDict):
    """One partition in `Stats.partitions`. Offsets are Kafka offsets (None: not known yet)."""

    topic: str
    partition: int
    assigned: bool  # False once revoked, e.g. in the final snapshot after run()
    # The commit position: every record below it completed (the lowest offset received and
    # not completed, else the next offset to read).
    position: int | None
    committed: int | None  # the last offset committed (the next record to redo after a restart)
    incomplete: int  # records received and not completed
    completed_above: int  # completed records above the committed offset (in the metadata)
    # Records from the position to the partition's end, not completed yet: ahead of the
    # group's lag (end - committed) by what completed since the last commit.
    lag: int | None
    paused: bool  # assigned and paused (backpressure, the commit metadata bound, a stop)
    blocked: bool  # the commit metadata bound holds new records back (partition_state.py)
    epoch: int  # assignments of this partition so far in this run


class BatchStats(TypedDict):
    """Batch mode's counters (engines/batching.py)."""

    batches: int
    records: int
    calls: int
    splits: int
    split_calls: int


class Stats(TypedDict):
    """What `ParallelConsumer.stats()` returns: the counters (records since start, README
    glossary), the sizes of the in-flight window and backlog (records), the partitions, and
    the engine's facts; `batches` in batch mode only."""

    engine: str
    ordering: str
    received: int
    completed: int
    retries: int
    failed: int
    skipped: int
    dead_lettered: int
    cancelled: int
    abandoned: int
    already_completed: int
    fenced: int
    outputs_produced: int
    outputs_acknowledged: int
    outputs_refused: int
    outputs_pending: int  # queued in the output producer, not answered yet
    transactions_committed: int  # exactly once (transactional_id): transactions committed
    transactions_aborted: int  # and aborted, their records rewound and redone
    in_flight: int
    backlog: int
    dead_lettering: int  # dead letters sent and not yet acknowledged
    paused_partitions: list[TopicPartition]  # assigned and paused, sorted
    partitions: dict[TopicPartition, PartitionStats]
    engine_info: dict[str, Any]
    batches: NotRequired[BatchStats]


def partition_stats(state: PartitionState, assigned: bool) -> PartitionStats:
    position, high = state.position, state.high_watermark
    lag = max(0, high - position) if high is not None and position is not None else None
    return {
        "topic": state.topic,
        "partition": state.partition,
        "assigned": assigned,
        "position": position,
        "committed": state.committed,
        "incomplete": state.incomplete,
        "completed_above": state.completed_above,
        "lag": lag,
        "paused": state.paused and assigned,  # a revoked partition is paused nowhere
        "blocked": state.blocked,
        "epoch": state.epoch,
    }


def snapshot(
    identity: tuple[str, str],
    counters: Counters,
    partitions: Mapping[TopicPartition, PartitionState],
    assigned: Container[TopicPartition],
    in_flight: int,
    backlog: int,
    dead_lettering: int,
    engine_info: dict[str, Any],
    engine_counters: Mapping[str, Any],
) -> Stats:
    """The stats() value: `identity` (engine, ordering), counters, sizes, per-partition
    positions and lag, engine facts, then the engine's own counters (Engine.counters), e.g.
    `batches` in batch mode. `partitions` may include states no longer `assigned` (the last
    assignment, after run() returned)."""
    per_partition = {
        key: partition_stats(state, key in assigned) for key, state in partitions.items()
    }
    engine, ordering = identity
    stats: Stats = {
        "engine": engine,
        "ordering": ordering,
        **counters.as_dict(),  # type: ignore[typeddict-item]
        "outputs_pending": (
            counters.outputs_produced - counters.outputs_acknowledged - counters.outputs_refused
        ),
        "in_flight": in_flight,
        "backlog": backlog,
        "dead_lettering": dead_lettering,
        "paused_partitions": sorted(key for key, p in per_partition.items() if p["paused"]),
        "partitions": per_partition,
        "engine_info": engine_info,
        **engine_counters,
    }
    return stats


def stats_json(stats: Stats) -> dict[str, Any]:
    """`stats` as a dict JSON can carry (the bench's results files), not a string:
    `json.dumps(stats_json(s))` writes it. Partitions are keyed, and paused partitions named,
    "topic[partition]"."""
    return {
        **stats,
        "paused_partitions": [str(key) for key in stats["paused_partitions"]],
        "partitions": {str(key): dict(p) for key, p in stats["partitions"].items()},
    }
