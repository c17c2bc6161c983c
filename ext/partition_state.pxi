# Native twin of pyrallel_consumer/control/partition_state.py's `PartitionState`, with the same
# behaviour. That module's docstring is the reasoning for the blocking rule (bounds (a) and (b))
# and applies here unchanged: only the data structures differ. Loaded by
# pyrallel_consumer/native.py; partition_state.py binds `PartitionState` to this one when built.
#
# Why it is faster: `receive` and `complete`, once per record each, keep the received and not yet
# complete offsets in a C array of int64 (oldest first) instead of a deque, and the offsets as C
# integers, so the in-order case touches no Python object. The completed set stays a Python set:
# it is touched only when records complete out of order. The rest (commit_point, check_fit) runs
# per poll batch or per commit and reuses offset_metadata's pure-Python helpers as they are.
#
# Offsets are Kafka's int64: a larger int raises OverflowError. Owned by the control thread, like
# the twin.
#

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.string cimport memmove

from pyrallel_consumer.control import offset_metadata

# Kept equal to partition_state.py's (tests/unit/test_native.py checks it).
DEFAULT_POLL_BATCH_SIZE = 500
HEADROOM_FACTOR = 2
_NOT_MEASURED = 1 << 62

# From partition_state.py on first use: it imports this module at its end, so importing it
# here at load time would be circular.
cdef object _commit_point_type = None
cdef object _warn_too_small = None
cdef object _log_cut = None


cdef _load_twin_helpers():
    global _commit_point_type, _warn_too_small, _log_cut
    from pyrallel_consumer.control import partition_state

    _commit_point_type = partition_state.CommitPoint
    _warn_too_small = partition_state._warn_too_small
    _log_cut = partition_state._log_cut


cdef inline Py_ssize_t _varint_size(long long value):
    """offset_metadata.varint_size, for |value| (Python's bit_length ignores the sign)."""
    cdef unsigned long long magnitude = <unsigned long long>(-value if value < 0 else value)
    cdef Py_ssize_t size = 1
    while magnitude >= 128:
        magnitude >>= 7
        size += 1
    return size


def varint_size(long long value):
    """Bytes of `value` (>= 0) as an unsigned LEB128 varint (offset_metadata.varint_size)."""
    return _varint_size(value)


cdef class PartitionState:
    """Which offsets of one partition were received and which completed; whether it may take
    more (partition_state.py's docstring).

    `metadata_limit` is the cluster's offset.metadata.max.bytes (characters of commit
    metadata); `poll_batch_size` the most records one consume() call returns.
    """

    cdef public object topic
    cdef public object partition
    cdef public object epoch
    cdef public object committed  # the position last committed (or found committed)
    cdef public object committed_metadata
    cdef public object high_watermark  # refreshed by the control thread, for lag
    cdef public bint blocked  # some outcome could outgrow the metadata limit: take no records
    cdef public bint paused
    cdef public bint revoked
    # next_offset (a property): one past the highest offset received; _has_next False = None.
    cdef long long _next
    cdef bint _has_next
    # Offsets received from the position up, increasing: _received[_head:_head + _count]
    # (those completed are also in _completed until every offset below them is).
    cdef long long *_received
    cdef Py_ssize_t _head
    cdef Py_ssize_t _count
    cdef Py_ssize_t _capacity
    cdef set _completed  # completed offsets still behind an incomplete one
    cdef object _already_completed  # completed before a restart or rebalance (a set)
    cdef object _limit
    cdef long long _max_payload
    cdef long long _headroom  # offsets, H
    cdef long long _always_fits_span
    cdef dict _holes  # incomplete q with d(q) > 1 -> varint(d(q) - 1)
    cdef Py_ssize_t _hole_sum
    cdef object _bound  # bound (b) in bytes when last measured (a Python int: no overflow)
    cdef object _bound_next  # next_offset when it was measured
    cdef bint _cut_logged
    # The intake's lanes of this partition (intake.pxi): by record key (at most LANES_KEPT),
    # and the partition's own, built on first use.
    cdef dict lanes
    cdef object partition_lane

    def __cinit__(self, *args, **kwargs):
        self._capacity = 64
        self._received = <long long *>PyMem_Malloc(self._capacity * sizeof(long long))
        if self._received is NULL:
            raise MemoryError()

    def __dealloc__(self):
        PyMem_Free(self._received)

    def __init__(
        self,
        topic,
        partition,
        epoch,
        committed=None,
        already_completed=None,
        *,
        metadata_limit=offset_metadata.MAX_METADATA_BYTES,
        poll_batch_size=DEFAULT_POLL_BATCH_SIZE,
    ):
        if _commit_point_type is None:
            _load_twin_helpers()
        self.topic = topic
        self.partition = partition
        self.epoch = epoch
        self._head = 0
        self._count = 0
        self._completed = set()
        self._already_completed = already_completed or set()
        self._has_next = False
        self._next = 0
        self.committed = committed
        self.committed_metadata = ""
        self.blocked = False
        self.paused = False
        self.revoked = False
        self.high_watermark = None
        self._limit = metadata_limit
        self._max_payload = offset_metadata.max_payload(metadata_limit)
        self._headroom = HEADROOM_FACTOR * poll_batch_size
        self._always_fits_span = offset_metadata.always_fits_span(metadata_limit)
        self._holes = {}
        self._hole_sum = 0
        self._bound = _NOT_MEASURED
        self._bound_next = 0
        self._cut_logged = False
        self.lanes = {}
        self.partition_lane = None
        if self._headroom // 8 + 1 > self._max_payload:
            _warn_too_small(metadata_limit, poll_batch_size)

    @property
    def next_offset(self):
        return self._next if self._has_next else None

    @next_offset.setter
    def next_offset(self, value):
        if value is None:
            self._has_next = False
        else:
            self._next = value
            self._has_next = True

    cdef int _push(self, long long offset) except -1:
        cdef long long *grown
        if self._head + self._count == self._capacity:
            if 2 * self._head >= self._capacity:
                # At least half the array is consumed head: slide the live part down.
                memmove(
                    self._received, self._received + self._head, self._count * sizeof(long long)
                )
                self._head = 0
            else:
                grown = <long long *>PyMem_Realloc(
                    self._received, 2 * self._capacity * sizeof(long long)
                )
                if grown is NULL:
                    raise MemoryError()
                self._received = grown
                self._capacity *= 2
        self._received[self._head + self._count] = offset
        self._count += 1
        return 0

    cdef inline long long _pop(self):
        cdef long long offset = self._received[self._head]
        self._count -= 1
        self._head = 0 if self._count == 0 else self._head + 1
        return offset

    def receive(self, long long offset):
        """Track a received offset; False means the commit metadata says it already
        completed (before a restart or rebalance), so it is not handled again."""
        return self._receive(offset)

    cdef bint _receive(self, long long offset) except -1:
        """`receive`, as a C call for the intake."""
        cdef bint had_next = self._has_next
        cdef long long previous_next = self._next
        cdef Py_ssize_t weight
        self._next = offset + 1
        self._has_next = True
        if self._already_completed and offset in self._already_completed:
            self._already_completed.discard(offset)
            if self._count:
                self._completed.add(offset)
                self._push(offset)
            return False
        if offset != previous_next and self._count and had_next:
            # Offsets skipped since the previous record (markers, compaction): d(q) > 1.
            weight = _varint_size(offset - previous_next)
            self._holes[offset] = weight
            self._hole_sum += weight
        self._push(offset)
        return True

    def complete(self, long long offset):
        self._complete(offset)

    cdef int _complete(self, long long offset) except -1:
        """`complete`, as a C call for the completions."""
        cdef set completed = self._completed
        if self._holes:
            self._hole_sum -= self._holes.pop(offset, 0)
        if self._count and self._received[self._head] == offset:
            self._pop()
            if completed:
                while self._count and self._received[self._head] in completed:
                    completed.discard(self._pop())
        else:
            completed.add(offset)
        return 0

    @property
    def position(self):
        """The offset to commit: everything below it completed. None before any record."""
        if self._count:
            return self._received[self._head]
        return self.next_offset

    @property
    def idle(self):
        """Every record received under this assignment completed."""
        return self._count == 0

    def advance(self, position):
        """Move an idle partition's position up to the consumer's `position`: the offsets in
        between were never delivered (transaction markers, aborted records under
        read_committed), so nothing is left to handle below it. Ignored while any received
        record is incomplete: the commit never passes one."""
        if self._count:
            return
        if not self._has_next or position > self._next:
            self.next_offset = position
            self._already_completed = {o for o in self._already_completed if o >= position}

    @property
    def incomplete(self):
        return self._count - len(self._completed)

    @property
    def completed_above(self):
        return len(self._completed)

    def commit_point(self):
        """What to commit, or None when nothing changed since the last commit.

        Decides `blocked` again from a fresh measurement (bound (b) of the twin's docstring).
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
        return _commit_point_type(position, metadata)

    def check_fit(self):
        """Block the partition before one more poll batch could let its completed list
        outgrow the metadata limit (the twin's docstring). Called by the poll loop after each
        batch: one comparison while the open span is small."""
        if not self._has_next:
            return  # no record yet: position is None too
        position = self._received[self._head] if self._count else self._next
        if self._cheap_fit(position):
            self.blocked = False
            return
        if self.blocked:
            return  # the next commit_point measures again
        if self._bound + (self._next - self._bound_next) <= self._max_payload:
            return
        self._measure(offset_metadata.relative_offsets(position, self._completed))
        self.blocked = self._bound > self._max_payload

    cdef bint _cheap_fit(self, long long position):
        """Bound (a) holds, or nothing is incomplete (never blocked then, so that a limit too
        small for one batch slows the partition down instead of stopping it)."""
        return (
            self._count == 0
            or not self._has_next
            or self._next + self._headroom - position <= self._always_fits_span
        )

    cdef void _measure(self, list relative):
        """Bound (b) now, in bytes: RLE(D) + 1 + the weights of the incomplete records (the
        position's own included, a byte to spare) + H for the next batch."""
        self._bound = (
            offset_metadata.run_length_size(relative)
            + 1
            + self.incomplete
            + self._hole_sum
            + self._headroom
        )
        self._bound_next = self._next if self._has_next else 0

    def mark_committed(self, position, metadata):
        self.committed = position
        self.committed_metadata = metadata

