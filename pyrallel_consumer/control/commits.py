"""Commits and positions: committing what completed, reading commits back on assignment,
pausing and resuming fetches, caching high watermarks.

Ownership: called by the control thread only (the rebalance callbacks included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.control.client import (
    ClientError,
    CommitOffset,
    KafkaClient,
    TopicPartitionKey,
)
from pyrallel_consumer.control.partition_state import CommitPoint, PartitionState

log = logging.getLogger("pyrallel_consumer")

COMMITTED_TIMEOUT_S = 10.0  # the longest read of the committed offsets on assignment


def commit(client: KafkaClient, states: Iterable[PartitionState], then: str) -> bool:
    """Commit every partition whose commit point moved; False when the broker refused.

    A refusal is logged, not raised: `then` completes the warning with what really happens
    next (a later commit retries, or, after the last one, what the group keeps and what will
    be redone). `states` are assigned ones: a revoked state is detached before it is marked
    revoked."""
    points: list[tuple[PartitionState, CommitPoint]] = []
    for state in states:
        point = state.commit_point()
        if point is not None:
            points.append((state, point))
    if not points:
        return True
    try:
        client.commit(
            [CommitOffset(s.topic, s.partition, p.position, p.metadata) for s, p in points]
        )
    except ClientError as exc:
        log.warning("commit failed (%s); %s", exc, then)
        return False
    for state, point in points:
        state.mark_committed(point.position, point.metadata)
    return True


def committed_text(states: Iterable[PartitionState]) -> str:
    """What the group has for `states`, for log lines: 'orders[0] at 5 (+3 completed above
    it), orders[1] at 7'; 'nothing' when no offset was ever committed."""
    parts = []
    for state in states:
        if state.committed is None:
            continue
        above = ""
        if state.committed_metadata:
            count = len(offset_metadata.decode(state.committed, state.committed_metadata))
            above = f" (+{count} completed above it)"
        parts.append(f"{state.topic}[{state.partition}] at {state.committed}{above}")
    return ", ".join(parts) or "nothing"


def advance_idle(client: KafkaClient, states: Iterable[PartitionState]) -> None:
    """Move partitions whose received records all completed to the consumer's position, past
    offsets never delivered (read_committed: transaction markers, aborted records), so their
    commit reaches the end and lag reaches 0.

    Only from the poll loop between consume calls, never inside a rebalance callback: there
    the position may already count records of a batch still being assembled, which are dropped
    for the revoked partitions, and committing it would skip them."""
    idle = [s for s in states if s.idle]
    if not idle:
        return
    keys = [TopicPartitionKey(s.topic, s.partition) for s in idle]
    for state, position in zip(idle, client.positions(keys), strict=True):
        if position is not None:
            state.advance(position)


def read_committed(
    client: KafkaClient,
    partitions: Sequence[TopicPartitionKey],
    first_epoch: int,
    timeout: float = COMMITTED_TIMEOUT_S,
) -> list[PartitionState]:
    """A fresh state per assigned partition, from the group's committed offset and metadata
    (the offsets it lists as completed are not handled again), read within `timeout`
    seconds. Epochs count up from `first_epoch`."""
    states = []
    for epoch, found in enumerate(client.committed(partitions, timeout), start=first_epoch):
        completed: set[int] = set()
        if found.offset is not None and found.metadata:
            try:
                completed = offset_metadata.decode(found.offset, found.metadata)
            except offset_metadata.MetadataError as exc:
                log.warning(
                    "ignoring commit metadata of %s[%d]: %s", found.topic, found.partition, exc
                )
        state = PartitionState(found.topic, found.partition, epoch, found.offset, completed)
        if found.offset is not None:
            state.mark_committed(found.offset, found.metadata)
        states.append(state)
    return states


def set_paused(client: KafkaClient, states: Sequence[PartitionState], paused: bool) -> None:
    """Pause or resume fetching; a failure means the assignment is changing, and the next
    loop turn decides again."""
    if not states:
        return
    keys = [TopicPartitionKey(s.topic, s.partition) for s in states]
    try:
        (client.pause if paused else client.resume)(keys)
    except ClientError as exc:
        log.debug("pause/resume of %s failed (assignment changing): %s", keys, exc)
        return
    for state in states:
        state.paused = paused


def refresh_watermarks(client: KafkaClient, states: Iterable[PartitionState]) -> None:
    """Cache high watermarks for stats(), which must not call librdkafka itself."""
    for state in states:
        high = client.high_watermark(TopicPartitionKey(state.topic, state.partition))
        if high is not None:
            state.high_watermark = high
