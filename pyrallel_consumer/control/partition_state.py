"""Offset tracking for one assigned partition, and when it must stop taking records.

Owned by the control thread: only the thread running the poll loop reads or writes it, so it
needs no lock. One object per assignment: a partition revoked and assigned again gets a new
object, and work carries a reference to the object it was created under. A completion whose
object is `revoked` is fenced, which is the assignment epoch without a counter to compare.

Blocking (`blocked`, which control/backpressure.py turns into a pause). The committed metadata
must list every completed record above the committed position, so a partition takes a record
only while *every* outcome of what it received still fits the broker's limit: whichever subset
of its received, incomplete records completes later, with the position wherever that leaves
it, plus the records one more poll batch may bring (the loop checks once per batch, and a
consume() call may return up to `poll_batch_size` records of one partition before the pause
lands; librdkafka drops a paused partition's prefetched records, so none arrive after it).
Blocking on the completed set as it stands was the bug: the backlog, the work in flight and the
rest of the batch completed afterwards and the list outgrew the limit.

Notation: p = position (lowest incomplete), n = next_offset, D = completed offsets above p,
Q = received offsets that may still complete (incomplete ones above p, and the next batch's),
H = the offsets the next batch can span (HEADROOM_FACTOR * poll_batch_size), d(q) = q minus
the offset received just before q (1 for consecutive offsets). The encoder writes the smallest
of its candidates, so the text fits if one candidate provably fits, for every outcome:

(a) Bitset. A later commit is at some p' >= p and lists offsets below n + H, so its raw bitset
    has at most (n + H - p) // 8 + 1 bytes, whatever completed. O(1).
(b) Run lengths. For C a subset of Q, RLE(D + C) <= RLE(D) + 1 + sum over q in Q of w(q), with
    w(q) = 1 when d(q) = 1, else 1 + varint(d(q) - 1): each run of D + C costs its gap varint
    and its length varint. A run's length is at most its D part's varint plus one byte per C
    element in it (varints are subadditive and never longer than the value). A gap before a
    run that starts with a D offset only shrank from D's gap. A gap before a run that starts
    with some x in C covers x's own d(x) - 1 unreceived offsets plus the unchosen q of Q below
    x (each with its d(q) offsets), so its varint is at most varint(d(x) - 1) plus the sum of
    varint(d(q)) over those q; the first gap may be 0 and costs the extra byte. Each q is
    charged once, chosen or not, and 1 + varint(d - 1) >= varint(d). Moving the position to
    p' (p' incomplete, never in the set) only drops whole leading runs and shortens the gap
    around p', so a later commit is no larger. For the next batch, sum w <= sum d <= H.
    Exact RLE(D) costs a pass over the completed offsets, so it is measured rarely (below).

While n + H - p is within `always_fits_span` (n - p up to 23,560 at the default limit and batch),
(a) holds and the check is one comparison per poll batch. Beyond it, (b) is estimated as the
last measured value plus n minus the n then (a received record adds w <= d, and completions
never make the worst case worse, since later outcomes are a subset of earlier ones); the
completed set is measured again only when that estimate no longer fits, and at every commit,
which sorts it anyway. A partition with nothing incomplete is never blocked, so a limit too
small for even one poll batch (warned about once) cannot stop it for good.

The one assumption: the next poll batch's offsets lie within H of n. Offsets are consecutive
but for transaction markers (so H = 2 * poll_batch_size covers a marker after every record);
a compacted topic can jump further, and then only that one batch can exceed the reserve: the
next check sees its real offsets. Should a commit ever have to cut its list all the same,
`commit_point` logs it at ERROR (a bug) and commits the prefix that fits, which is still safe.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import TYPE_CHECKING, NamedTuple

from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.native import bind_twin

log = logging.getLogger("pyrallel_consumer")

DEFAULT_POLL_BATCH_SIZE = 500  # ConsumerConfig's default poll_batch_size
HEADROOM_FACTOR = 2  # offsets a poll batch may span per record: one transaction marker each
_NOT_MEASURED = 1 << 62  # no measurement yet: the estimate never fits
_warned_too_small: set[tuple[int, int]] = set()  # (limit, headroom) warned about, process-wide


class CommitPoint(NamedTuple):
    """What to commit for a partition: every offset below `position` completed, and
    `metadata` encodes the completed offsets above it."""

    position: int
    metadata: str


class PartitionState:
    """Which offsets of one partition were received and which completed; whether it may take
    more (module docstring).

    Offsets may have gaps (compaction, transaction markers), so the committable position is
    derived from the offsets actually received: the lowest received offset still incomplete,
    or one past the highest received when all completed.

    `metadata_limit` is the cluster's offset.metadata.max.bytes (characters of commit
    metadata); `poll_batch_size` the most records one consume() call returns.
    """

    __slots__ = (
        "_already_completed",
        "_always_fits_span",
        "_bound",
        "_bound_next",
        "_completed",
        "_cut_logged",
        "_headroom",
        "_hole_sum",
        "_holes",
        "_limit",
        "_max_payload",
        "_received",
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
        *,
        metadata_limit: int = offset_metadata.MAX_METADATA_BYTES,
        poll_batch_size: int = DEFAULT_POLL_BATCH_SIZE,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.epoch = epoch
        # Offsets received from the position up, increasing; those completed are also in
        # _completed until every offset below them is.
        self._received: deque[int] = deque()
        self._completed: set[int] = set()  # completed offsets still behind an incomplete one
        # completed before a restart or rebalance, read from the commit metadata
        self._already_completed = already_completed or set()
        self.next_offset: int | None = None  # one past the highest offset received
        self.committed = committed  # the position last committed (or found committed)
        self.committed_metadata = ""
        self.blocked = False  # some outcome could outgrow the metadata limit: take no records
        self.paused = False
        self.revoked = False
        self.high_watermark: int | None = None  # refreshed by the control thread, for lag
        self._limit = metadata_limit
        self._max_payload = offset_metadata.max_payload(metadata_limit)
        self._headroom = HEADROOM_FACTOR * poll_batch_size  # offsets, H
        self._always_fits_span = offset_metadata.always_fits_span(metadata_limit)
        # Incomplete received offsets q with d(q) > 1 -> their extra weight varint(d(q) - 1),
        # and the sum of those weights: bound (b) in O(1) without walking the records.
        self._holes: dict[int, int] = {}
        self._hole_sum = 0
        self._bound = _NOT_MEASURED  # bound (b) in bytes when last measured
        self._bound_next = 0  # next_offset when it was measured
        self._cut_logged = False
        if self._headroom // 8 + 1 > self._max_payload:
            _warn_too_small(metadata_limit, poll_batch_size)

    def receive(self, offset: int) -> bool:
        """Track a received offset; False means the commit metadata says it already
        completed (before a restart or rebalance), so it is not handled again."""
        previous_next = self.next_offset
        self.next_offset = offset + 1
        if offset in self._already_completed:
            self._already_completed.discard(offset)
            if self._received:
                self._completed.add(offset)
                self._received.append(offset)
            return False
        if offset != previous_next and self._received and previous_next is not None:
            # Offsets skipped since the previous record (markers, compaction): d(q) > 1.
            weight = offset_metadata.varint_size(offset - previous_next)
            self._holes[offset] = weight
            self._hole_sum += weight
        self._received.append(offset)
        return True

    def complete(self, offset: int) -> None:
        if self._holes:
            self._hole_sum -= self._holes.pop(offset, 0)
        received = self._received
        if received and received[0] == offset:
            received.popleft()
            completed = self._completed
            while received and received[0] in completed:
                completed.discard(received.popleft())
        else:
            self._completed.add(offset)

    @property
    def position(self) -> int | None:
        """The offset to commit: everything below it completed. None before any record."""
        if self._received:
            return self._received[0]
        return self.next_offset

    @property
    def idle(self) -> bool:
        """Every record received under this assignment completed."""
        return not self._received

    def advance(self, position: int) -> None:
        """Move an idle partition's position up to the consumer's `position`: the offsets in
        between were never delivered (transaction markers, aborted records under
        read_committed), so nothing is left to handle below it. Ignored while any received
        record is incomplete: the commit never passes one."""
        if self._received:
            return
        if self.next_offset is None or position > self.next_offset:
            self.next_offset = position
            self._already_completed = {o for o in self._already_completed if o >= position}

    @property
    def incomplete(self) -> int:
        return len(self._received) - len(self._completed)

    @property
    def completed_above(self) -> int:
        return len(self._completed)

    def commit_point(self) -> CommitPoint | None:
        """What to commit, or None when nothing changed since the last commit.

        Decides `blocked` again from a fresh measurement (module docstring, bound (b)).
        """
        position = self.position
        if position is None:
            return None
        relative = offset_metadata.relative_offsets(position, self._completed)
        metadata, fits = offset_metadata.encode_relative(relative, self._limit)
        if not fits and not self._cut_logged:
            self._cut_logged = True
            _log_cut(self.topic, self.partition, position, len(relative), self._limit)
        if self._cheap_fit(position):
            self.blocked = False
        else:
            self._measure(relative)
            self.blocked = self._bound > self._max_payload
        if position == self.committed and metadata == self.committed_metadata:
            return None
        return CommitPoint(position, metadata)

    def check_fit(self) -> None:
        """Block the partition before one more poll batch could let its completed list
        outgrow the metadata limit (module docstring). Called by the poll loop after each
        batch: one comparison while the open span is small."""
        position, next_offset = self.position, self.next_offset
        if position is None or next_offset is None:
            return
        if self._cheap_fit(position):
            self.blocked = False
            return
        if self.blocked:
            return  # the next commit_point measures again
        if self._bound + (next_offset - self._bound_next) <= self._max_payload:
            return
        self._measure(offset_metadata.relative_offsets(position, self._completed))
        self.blocked = self._bound > self._max_payload

    def _cheap_fit(self, position: int) -> bool:
        """Bound (a) holds, or nothing is incomplete (never blocked then, so that a limit too
        small for one batch slows the partition down instead of stopping it)."""
        next_offset = self.next_offset
        return (
            not self._received
            or next_offset is None
            or next_offset + self._headroom - position <= self._always_fits_span
        )

    def _measure(self, relative: list[int]) -> None:
        """Bound (b) now, in bytes: RLE(D) + 1 + the weights of the incomplete records (the
        position's own included, a byte to spare) + H for the next batch."""
        self._bound = (
            offset_metadata.run_length_size(relative)
            + 1
            + self.incomplete
            + self._hole_sum
            + self._headroom
        )
        self._bound_next = self.next_offset or 0

    def mark_committed(self, position: int, metadata: str) -> None:
        self.committed = position
        self.committed_metadata = metadata


def _log_cut(topic: str, partition: int, position: int, completed: int, limit: int) -> None:
    """A commit had to cut its completed list (a bug: module docstring), logged once per
    partition state by its caller."""
    log.error(
        "bug: the commit metadata of %s[%d] at %d lists only part of the %d completed "
        "offsets above it (offset.metadata.max.bytes=%d); the partition should have "
        "stopped taking records before that. The rest will be redone after a restart.",
        topic,
        partition,
        position,
        completed,
        limit,
    )


def _warn_too_small(limit: int, poll_batch_size: int) -> None:
    if (limit, poll_batch_size) in _warned_too_small:
        return
    _warned_too_small.add((limit, poll_batch_size))
    log.warning(
        "offset.metadata.max.bytes=%d is too small for poll_batch_size=%d: one poll batch "
        "could complete more offsets than the commit metadata can list, so a restart may redo "
        "records that completed; lower poll_batch_size or raise offset.metadata.max.bytes",
        limit,
        poll_batch_size,
    )


# The native twin (ext/partition_state.pxi) replaces PartitionState when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the class above.
# PURE_TWIN keeps that reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "partition_state", ("PartitionState",))
