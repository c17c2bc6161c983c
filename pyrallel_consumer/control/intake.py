"""A poll batch into work items, in one pass: the control thread's per-record intake.

For each message of a consume() call: an error goes to the error callback; a record of a
partition no longer assigned is dropped (its new owner consumes it); a record whose offset the
partition state knows as completed (commit metadata, before a restart or rebalance) is counted
and skipped; any other becomes a `Record` and a `WorkItem` on its lane (ordering.py), added to the
tracker's backlog. One job, no state: the tracker owns what it writes to.

A native twin (ext/intake.pxi, in pyrallel_consumer._record_path) runs the same loop in C when
built (pyrallel_consumer/native.py): it is the hottest loop of the control thread, a Python
interpreter turn per message attribute.

Ownership: the control thread (called by tracker.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pyrallel_consumer.control.client import Message
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem


class Queue(Protocol):
    """Where the work items go: the tracker's `Backlog`."""

    def add(self, item: WorkItem[PartitionState]) -> None: ...


OnError = Callable[[Any], None]  # a message's KafkaError, for the error callback


def intake(
    messages: Sequence[Message],
    partitions: Mapping[Any, PartitionState],
    ordering: str,
    backlog: Queue,
    last_id: int,
    received_at: float,
    on_error: OnError,
) -> tuple[int, int]:
    """Turn `messages` into work items numbered from `last_id + 1`, each added to `backlog`.

    `partitions` maps (topic, partition) tuples to their states; `ordering` is the config's
    ("key", "partition" or "unordered"); `received_at` monotonic seconds. Returns (the last id
    used, the records skipped as already completed).
    """
    lane_of = lane_function(ordering)
    add = backlog.add
    skipped = 0
    # A poll batch comes a partition at a time: look the state up once per run of them.
    last_topic, last_partition, state = None, -1, None
    for message in messages:
        error = message.error()
        if error is not None:
            on_error(error)
            continue
        topic, partition = message.topic(), message.partition()
        if partition != last_partition or topic != last_topic:
            state = partitions.get((topic, partition))
            last_topic, last_partition = topic, partition
        if state is None:
            continue
        offset = message.offset()
        if not state.receive(offset):
            skipped += 1
            continue
        record = Record(
            topic,
            partition,
            offset,
            message.key(),
            message.value(),
            message.headers(),
            message.timestamp()[1],
        )
        last_id += 1
        add(WorkItem(last_id, lane_of(record), record, state, received_at))
    return last_id, skipped


# The native twin (ext/intake.pxi) replaces the name above when built, unless PYRALLEL_NATIVE=0
# (native.py). Hidden from mypy, which checks against the pure-Python definition. PURE_TWIN
# keeps it reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "intake", ("intake",))
