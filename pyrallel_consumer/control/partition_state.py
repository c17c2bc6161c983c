"""Offset tracking for one assigned partition.

Owned by the control thread: only the thread running the poll loop reads or writes it, so it
needs no lock. One object per assignment: a partition revoked and assigned again gets a new
object, and work carries a reference to the object it was created under. A completion whose
object is `revoked` is fenced, which is the assignment epoch without a counter to compare.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

from pyrallel_consumer.control import offset_metadata


class CommitPoint(NamedTuple):
    """What to commit for a partition: every offset below `position` completed, and
    `metadata` encodes the completed offsets above it."""

    position: int
    metadata: str


class PartitionState:
    """Which offsets of one partition were received and which completed.

    Offsets may have gaps (compaction, transaction markers), so the committable position is
    derived from the offsets actually received: the lowest received offset still incomplete,
    or one past the highest received when all completed.
    """

    __slots__ = (
        "_already_completed",
        "_checked_span",
        "_completed",
        "_pending",
        "blocked",
        "committed",
        "committed_metadata",
        "epoch",
        "high_watermark",
        "next_offset",
        "partition",
        "paused",
        "revoked",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        epoch: int,
        committed: int | None = None,
        already_completed: set[int] | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.epoch = epoch
        self._pending: deque[int] = deque()  # received, not yet known complete, increasing
        self._completed: set[int] = set()  # completed offsets still behind an incomplete one
        # completed before a restart or rebalance, read from the commit metadata
        self._already_completed = already_completed or set()
        self.next_offset: int | None = None  # one past the highest offset received
        self.committed = committed  # the position last committed (or found committed)
        self.committed_metadata = ""
        self.blocked = False  # metadata did not fit: take no new records until the gap closes
        self._checked_span = 0
        self.paused = False
        self.revoked = False
        self.high_watermark: int | None = None  # refreshed by the control thread, for lag

    def receive(self, offset: int) -> bool:
        """Track a received offset; False means the commit metadata says it already
        completed (before a restart or rebalance), so it is not handled again."""
        self.next_offset = offset + 1
        if offset in self._already_completed:
            self._already_completed.discard(offset)
            if self._pending:
                self._completed.add(offset)
                self._pending.append(offset)
            return False
        self._pending.append(offset)
        return True

    def complete(self, offset: int) -> None:
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            completed = self._completed
            while pending and pending[0] in completed:
                completed.discard(pending.popleft())
        else:
            self._completed.add(offset)

    @property
    def position(self) -> int | None:
        """The offset to commit: everything below it completed. None before any record."""
        if self._pending:
            return self._pending[0]
        return self.next_offset

    @property
    def idle(self) -> bool:
        """Every record received under this assignment completed."""
        return not self._pending

    def advance(self, position: int) -> None:
        """Move an idle partition's position up to the consumer's `position`: the offsets in
        between were never delivered (transaction markers, aborted records under
        read_committed), so nothing is left to handle below it. Ignored while any received
        record is incomplete: the commit never passes one."""
        if self._pending:
            return
        if self.next_offset is None or position > self.next_offset:
            self.next_offset = position
            self._already_completed = {o for o in self._already_completed if o >= position}

    @property
    def incomplete(self) -> int:
        return len(self._pending) - len(self._completed)

    @property
    def completed_above(self) -> int:
        return len(self._completed)

    def commit_point(self) -> CommitPoint | None:
        """What to commit, or None when nothing changed since the last commit.

        Sets `blocked` when the completed set no longer fits the metadata limit.
        """
        position = self.position
        if position is None:
            return None
        metadata, fits = offset_metadata.encode(position, self._completed)
        self.blocked = not fits
        if position == self.committed and metadata == self.committed_metadata:
            return None
        return CommitPoint(position, metadata)

    def check_fit(self) -> None:
        """Re-check `blocked` between commits once the open span could outgrow the metadata.

        Below ALWAYS_FITS_SPAN offsets even an incompressible bitset fits, so no encoding is
        needed; above it, encode again only after the span grew by a quarter, so a fast
        partition is blocked within a poll batch or two rather than at the next commit.
        """
        position, next_offset = self.position, self.next_offset
        if position is None or next_offset is None:
            return
        span = next_offset - position
        if span > offset_metadata.ALWAYS_FITS_SPAN and span >= self._checked_span * 1.25:
            self._checked_span = span
            self.commit_point()

    def mark_committed(self, position: int, metadata: str) -> None:
        self.committed = position
        self.committed_metadata = metadata
