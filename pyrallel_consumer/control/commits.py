"""Commits and positions: committing what completed, reading commits back on assignment,
pausing and resuming fetches, caching high watermarks.

Ownership: called by the control thread only (the rebalance callbacks included).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from confluent_kafka import KafkaError

from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.control.client import (
    ClientError,
    CommitFailure,
    CommitOffset,
    CommittedOffset,
    KafkaClient,
)
from pyrallel_consumer.control.kafka_errors import fatal_error
from pyrallel_consumer.control.partition_state import CommitPoint, PartitionState
from pyrallel_consumer.errors import CommitError
from pyrallel_consumer.faults import Faults
from pyrallel_consumer.topic_partition import TopicPartition

log = logging.getLogger("pyrallel_consumer")

COMMITTED_TIMEOUT_S = 10.0  # the longest read of the committed offsets on assignment


# Commit refusals that no retry cures (group or topic authorization, metadata the broker finds
# too large, a fenced or invalid member): the run ends with CommitError. Everything else (no
# coordinator yet, a rebalance in progress, a timeout, a partition whose topic is being
# deleted) passes: the next commit interval retries it.
PERMANENT_CODES = frozenset(
    {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.OFFSET_METADATA_TOO_LARGE,
        KafkaError.INVALID_COMMIT_OFFSET_SIZE,
        KafkaError.INVALID_GROUP_ID,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError._INVALID_ARG,
    }
)


class Committer:
    """Commits what completed and holds the broker to its answer: a partition is marked
    committed (and shown so by stats()) only when the broker accepted it. A retriable refusal
    is logged and retried by the next commit; a permanent one parks CommitError, a fatal one
    KafkaFatalError; after a fatal error nothing more is committed (a fenced member's commits
    would only be refused, or worse, overwrite the new owner's)."""

    def __init__(self, client: KafkaClient, faults: Faults) -> None:
        self._client = client
        self._faults = faults

    def commit(self, states: Iterable[PartitionState], then: str) -> bool:
        """Commit every partition whose commit point moved; False when any was refused.

        `then` completes the warning of a retriable refusal with what really happens next (a
        later commit retries, or, after the last one, what the group keeps and what will be
        redone). `states` are assigned ones: a revoked state is detached before it is marked
        revoked."""
        if self._faults.fatal:
            return False
        points: list[tuple[PartitionState, CommitPoint]] = []
        for state in states:
            point = state.commit_point()
            if point is not None:
                points.append((state, point))
        if not points:
            return True
        offsets = [CommitOffset(s.topic, s.partition, p.position, p.metadata) for s, p in points]
        try:
            failures = self._client.commit(offsets)
        except ClientError as exc:  # the whole request: every partition failed alike
            failures = [
                CommitFailure(
                    s.topic,
                    s.partition,
                    exc.code or 0,
                    exc.name,
                    str(exc),
                    exc.fatal,
                    exc.retriable,
                )
                for s, _ in points
            ]
        refused = {(f.topic, f.partition) for f in failures}
        for state, point in points:
            if (state.topic, state.partition) not in refused:
                state.mark_committed(point.position, point.metadata)
        if failures:
            self._refused(failures, then)
        return not failures

    def abort(self, reason: str) -> None:
        """Nothing to take back: a plain commit leaves no work half committed (the
        transactional committer aborts its open transaction here)."""

    def _refused(self, failures: Sequence[CommitFailure], then: str) -> None:
        first = failures[0]
        names = [f"{f.topic}[{f.partition}]" for f in failures]
        fatal = [f for f in failures if f.fatal]
        if fatal:
            self._faults.park(fatal_error(fatal[0].text, fatal[0].code, fatal[0].name))
            return
        permanent = [f for f in failures if f.code in PERMANENT_CODES]
        if permanent:
            bad = permanent[0]
            partitions = [(f.topic, f.partition) for f in permanent if f.code == bad.code]
            listed = ", ".join(f"{t}[{p}]" for t, p in partitions)
            self._faults.park(
                CommitError(
                    f"the broker refused the commit of {listed} for good: {bad.name} "
                    f"({bad.text}){_COMMIT_HINTS.get(bad.code, '')}; the group keeps the "
                    "offsets committed before, and whoever consumes these partitions next "
                    "redoes what completed after them",
                    bad.code,
                    bad.name,
                    partitions,
                )
            )
            return
        log.warning(
            "commit of %s failed (%s: %s); %s", ", ".join(names), first.name, first.text, then
        )


_COMMIT_HINTS = {
    KafkaError.GROUP_AUTHORIZATION_FAILED: "; grant this principal Read on the consumer group",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "; grant this principal Read on the topic",
    KafkaError.OFFSET_METADATA_TOO_LARGE: (
        "; the commit metadata exceeded the brokers' offset.metadata.max.bytes"
    ),
}


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
    keys = [TopicPartition(s.topic, s.partition) for s in idle]
    for state, position in zip(idle, client.positions(keys), strict=True):
        if position is not None:
            state.advance(position)


def read_commits(
    client: KafkaClient,
    partitions: Sequence[TopicPartition],
    first_epoch: int,
    timeout: float = COMMITTED_TIMEOUT_S,
    metadata_limit: int = offset_metadata.MAX_METADATA_BYTES,
    poll_batch_size: int = 500,
) -> list[PartitionState]:
    """A fresh state per assigned partition, from the group's committed offset and metadata
    (the offsets it lists as completed are not handled again), read within `timeout`
    seconds; each state keeps its commit metadata within `metadata_limit` bytes, taking up to
    `poll_batch_size` records per consume call. Epochs count
    up from `first_epoch`. Raises ClientError when the offsets could not be read."""
    return [
        state_from(found, epoch, metadata_limit, poll_batch_size)
        for epoch, found in enumerate(client.committed(partitions, timeout), start=first_epoch)
    ]


def state_from(
    found: CommittedOffset, epoch: int, metadata_limit: int, poll_batch_size: int
) -> PartitionState:
    """A fresh state for a partition whose group commit is `found` (read_commits)."""
    completed: set[int] = set()
    if found.offset is not None and found.metadata:
        try:
            completed = offset_metadata.decode(found.offset, found.metadata)
        except offset_metadata.MetadataError as exc:
            log.warning("ignoring commit metadata of %s[%d]: %s", found.topic, found.partition, exc)
    state = PartitionState(
        found.topic,
        found.partition,
        epoch,
        found.offset,
        completed,
        metadata_limit=metadata_limit,
        poll_batch_size=poll_batch_size,
    )
    if found.offset is not None:
        state.mark_committed(found.offset, found.metadata)
    return state


def set_paused(client: KafkaClient, states: Sequence[PartitionState], paused: bool) -> None:
    """Pause or resume fetching; a failure means the assignment is changing, and the next
    loop turn decides again."""
    if not states:
        return
    keys = [TopicPartition(s.topic, s.partition) for s in states]
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
        high = client.high_watermark(TopicPartition(state.topic, state.partition))
        if high is not None:
            state.high_watermark = high
