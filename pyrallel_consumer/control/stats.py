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
from typing import Any

from pyrallel_consumer.control.client import TopicPartitionKey
from pyrallel_consumer.control.partition_state import PartitionState


@dataclass(slots=True)
class Counters:
    """Records since start, by what happened to them (README glossary)."""

    received: int = 0
    completed: int = 0  # succeeded, skipped or dead-lettered: committable
    retries: int = 0
    failed: int = 0  # failed every attempt; then skipped, dead-lettered or the consumer stopped
    skipped: int = 0  # failed and given up under on_failure='skip'
    dead_lettered: int = 0  # failed and acknowledged by the dead-letter topic
    cancelled: int = 0  # not started when their partition was revoked
    already_completed: int = 0  # completed before a restart or rebalance, per commit metadata
    fenced: int = 0  # reported after their partition was revoked; the new owner redoes them

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def partition_stats(state: PartitionState, assigned: bool) -> dict[str, Any]:
    position, high = state.position, state.high_watermark
    lag = max(0, high - position) if high is not None and position is not None else None
    return {
        "topic": state.topic,
        "partition": state.partition,
        "assigned": assigned,  # False once revoked, e.g. in the final snapshot after run()
        "position": position,
        "committed": state.committed,
        "incomplete": state.incomplete,
        "completed_above": state.completed_above,
        "lag": lag,
        "paused": state.paused,
        "blocked": state.blocked,
        "epoch": state.epoch,
    }


def snapshot(
    counters: Counters,
    partitions: Mapping[TopicPartitionKey, PartitionState],
    assigned: Container[TopicPartitionKey],
    in_flight: int,
    backlog: int,
    dead_lettering: int,
    engine_info: dict[str, Any],
    engine_counters: Mapping[str, Any],
) -> dict[str, Any]:
    """The stats() dict: counters, sizes, per-partition positions and lag (keyed
    "topic[partition]"), engine facts, then the engine's own counters (Engine.counters), e.g.
    `batches` in batch mode. `partitions` may include states no longer `assigned`
    (the last assignment, after run() returned)."""
    per_partition = {
        f"{key.topic}[{key.partition}]": partition_stats(state, key in assigned)
        for key, state in partitions.items()
    }
    return {
        **counters.as_dict(),
        "in_flight": in_flight,
        "backlog": backlog,
        "dead_lettering": dead_lettering,
        "paused_partitions": sorted(
            k for k, v in per_partition.items() if v["paused"] and v["assigned"]
        ),
        "partitions": per_partition,
        "engine_info": engine_info,
        **engine_counters,
    }
