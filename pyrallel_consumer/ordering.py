"""Lanes: how an ordering mode maps a record to its unit of sequential execution.

Shared by the control plane and process-engine workers so both derive the same lanes. A record
with no key under `key` ordering falls back to its partition's lane (order kept, rather than
guessing that keyless records are independent).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Lane

LaneOf = Callable[[Record], Lane]


def _by_key(record: Record) -> Hashable:
    return (record.topic, record.partition, record.key)


def _by_partition(record: Record) -> Hashable:
    return (record.topic, record.partition)


def _unordered(record: Record) -> None:
    return None


def lane_function(ordering: str) -> LaneOf:
    try:
        return {"key": _by_key, "partition": _by_partition, "unordered": _unordered}[ordering]
    except KeyError:
        raise ValueError(
            f"ordering must be 'key', 'partition' or 'unordered'; got {ordering!r}"
        ) from None
