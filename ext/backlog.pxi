# Native twin of pyrallel_consumer/backlog.py: the same `Backlog`, `record_bytes` and
# `batch_bytes`, with the same behaviour (that module's docstring explains the rotation and the
# per-lane cap). Loaded by pyrallel_consumer/native.py; backlog.py binds these names when built.
#
# Why it is faster: the pure twin pays a deque method call per queue operation, a `size_of`
# call per record twice, and two dict lookups per lane (its queue and its taken count). Here a
# lane is one `_Lane` object (its queue as a list with a head index, and its count), found with
# one dict lookup, the rotation is a list with a head index too, and the two standard sizers are
# computed inline, reading this module's WorkItem and Record as structs. Not thread-safe, like
# the twin: its owner says which thread guards it.
#

from types import GenericAlias

# A list-backed queue drops its consumed head slots once at least this many pile up and they
# are at least half the list: amortised O(1), without shifting the list on every pop.
cdef enum:
    COMPACT_AT = 64


cdef inline Py_ssize_t _drop_head(list queue, Py_ssize_t head):
    """`queue[head]` leaves a list-backed queue (`queue[head:]`, oldest first): its slot is
    cleared and the new head returned, the list emptied or cut in place once it is all
    consumed or its consumed slots reach COMPACT_AT and half of it."""
    queue[head] = None
    head += 1
    if head == len(queue):
        del queue[:]
        return 0
    if head >= COMPACT_AT and 2 * head >= len(queue):
        del queue[:head]
        return 0
    return head

# `size_of` modes: the two standard sizers are inlined, any other callable is called.
cdef enum:
    SIZE_RECORD
    SIZE_BATCH
    SIZE_CALL


cdef inline Py_ssize_t _record_size(object record):
    """Key + value bytes of one Record (None counts 0), as `len(value or b"")` does. This
    module's Record is read as a struct, any other class through its attributes."""
    cdef Py_ssize_t size = 0
    if type(record) is Record:
        value = (<Record>record).value
        key = (<Record>record).key
    else:
        value = record.value
        key = record.key
    if value:
        size += len(value)
    if key:
        size += len(key)
    return size


cdef inline object _record_of(object item):
    """`item.record`, read as a struct field for this module's WorkItem."""
    return (<WorkItem>item).record if type(item) is WorkItem else item.record


def record_bytes(item):
    """Key + value bytes of the item's record."""
    return _record_size(_record_of(item))


def batch_bytes(item):
    """Key + value bytes of the records of a batch-mode item, whose `record` is their list."""
    cdef Py_ssize_t size = 0
    for record in item.record:
        size += _record_size(record)
    return size


cdef class _Lane:
    """One lane's queued items (`items[head:]`, oldest first) and its count of records taken
    and not yet done. Lives in `Backlog._lanes` while it has either."""

    cdef object key
    cdef list items
    cdef Py_ssize_t head
    cdef Py_ssize_t taken

    def __cinit__(self, key):
        self.key = key
        self.items = []
        self.head = 0
        self.taken = 0

    cdef inline Py_ssize_t queued(self):
        return len(self.items) - self.head

    cdef inline object pop(self):
        item = self.items[self.head]
        self.head = _drop_head(self.items, self.head)  # the backlog no longer holds it
        return item


cdef class Backlog:
    """Work items per lane, taken round-robin across lanes; counts items and key+value bytes.

    With `lane_cap`, a lane with `lane_cap` records taken and not yet `done` is skipped by
    `take` until `done(lane)` is called for one of them. `size_of` gives an item's bytes
    (`batch_bytes` for batch-mode items).
    """

    # Lane key -> _Lane, for every lane with queued items or (with a cap) records taken.
    cdef dict _lanes
    # Lanes with queued items and under their cap, round-robin: `_ready[_ready_head:]`.
    cdef list _ready
    cdef Py_ssize_t _ready_head
    cdef Py_ssize_t _size
    cdef Py_ssize_t _beyond  # records queued beyond their lane's room under its cap
    cdef public Py_ssize_t bytes  # key + value bytes in the backlog
    cdef bint _capped
    cdef Py_ssize_t _cap
    cdef int _size_mode
    cdef object _size_of

    __class_getitem__ = classmethod(GenericAlias)  # Backlog[Owner], as the twin's Generic

    def __init__(self, lane_cap=None, size_of=record_bytes):
        self._lanes = {}
        self._ready = []
        self._ready_head = 0
        self._size = 0
        self._beyond = 0
        self.bytes = 0
        self._capped = lane_cap is not None
        self._cap = lane_cap or 0
        self._size_of = size_of
        if size_of is record_bytes:
            self._size_mode = SIZE_RECORD
        elif size_of is batch_bytes:
            self._size_mode = SIZE_BATCH
        else:
            self._size_mode = SIZE_CALL

    def __len__(self):
        return self._size

    @property
    def ready(self):
        """Records `take` would hand out now, given the room: per lane, its queued records up
        to its room under the cap (all of them without a cap, and for unordered records)."""
        return self._size - self._beyond

    cdef inline Py_ssize_t _beyond_room(self, _Lane lane):
        """Of `lane`'s queued records, those beyond its room under the cap."""
        if not self._capped or lane.key is None:
            return 0
        return max(0, lane.queued() - (self._cap - lane.taken))

    cdef inline Py_ssize_t _bytes_of(self, object item) except -1:
        if self._size_mode == SIZE_RECORD:
            return _record_size(_record_of(item))
        if self._size_mode == SIZE_BATCH:
            return batch_bytes(item)
        return self._size_of(item)

    cdef inline Py_ssize_t _added_bytes(self, object item) except -1:
        """`_bytes_of(item)` as `_add` counted it: kept on this module's WorkItem (`nbytes`),
        so taking it back reads one field of the item in hand instead of following item ->
        record -> key and value, by then out of the CPU's cache (perf: the size was about a
        twentieth of the control thread's time, most of it in `take`)."""
        if type(item) is WorkItem:
            return (<WorkItem>item).nbytes
        return self._bytes_of(item)

    cdef inline void _push_ready(self, _Lane lane):
        self._ready.append(lane)

    cdef inline _Lane _pop_ready(self):
        cdef _Lane lane = <_Lane>self._ready[self._ready_head]
        self._ready_head = _drop_head(self._ready, self._ready_head)
        return lane

    def add(self, item):
        self._add(item)

    cdef int _add(self, object item) except -1:
        """`add`, as a C call for the intake."""
        key = (<WorkItem>item).lane if type(item) is WorkItem else item.lane
        cdef _Lane lane
        cdef Py_ssize_t size
        found = self._lanes.get(key)
        if found is None:
            lane = _Lane(key)
            self._lanes[key] = lane
        else:
            lane = <_Lane>found
        if lane.queued() == 0 and (not self._capped or key is None or lane.taken < self._cap):
            self._push_ready(lane)
        # One more beyond the room when the queue already fills it (a lane at its cap has none).
        if self._capped and key is not None and lane.queued() >= self._cap - lane.taken:
            self._beyond += 1
        lane.items.append(item)
        self._size += 1
        size = self._bytes_of(item)
        if type(item) is WorkItem:  # kept for `take` (`_added_bytes`)
            (<WorkItem>item).nbytes = size
        self.bytes += size
        return 0

    def take(self, Py_ssize_t limit):
        """Up to `limit` records, one per lane per round (unordered records in bulk); fewer
        when the other lanes are at their cap."""
        cdef list taken = []
        cdef Py_ssize_t count = 0, bulk, size = 0
        cdef _Lane lane
        while count < limit and self._ready_head < len(self._ready):
            lane = self._pop_ready()
            if lane.key is None:
                bulk = min(limit - count, lane.queued())
                for _ in range(bulk):
                    item = lane.pop()
                    size += self._added_bytes(item)
                    taken.append(item)
                count += bulk
            else:
                item = lane.pop()
                size += self._added_bytes(item)
                taken.append(item)
                count += 1
                if self._capped:
                    lane.taken += 1
                    if lane.taken >= self._cap:
                        continue  # parked, kept for its count: `done` puts it back
            if lane.queued():
                self._push_ready(lane)
            elif lane.taken == 0:
                del self._lanes[lane.key]
        self._size -= count
        self.bytes -= size
        return taken

    def done(self, lane):
        """One record of `lane` taken from this backlog finished (reported, in any way); a lane
        at its cap takes its turn again. Only for a backlog with a cap.

        Raises KeyError for a lane with no record taken and not done, as the twin does."""
        self._done(lane)

    cdef int _done(self, object lane, Py_ssize_t count=1) except -1:
        """`done`, as a C call for the settling of work in flight, for `count` records of
        `lane` at once (a batch's records come back lane by lane: one lookup per run)."""
        if not self._capped or lane is None:
            return 0
        found = self._lanes.get(lane)
        if found is None or (<_Lane>found).taken < count:
            raise KeyError(lane)
        cdef _Lane state = <_Lane>found
        cdef bint parked = state.taken >= self._cap
        self._beyond -= self._beyond_room(state)
        state.taken -= count
        self._beyond += self._beyond_room(state)
        if state.queued():
            if parked and state.taken < self._cap:
                self._push_ready(state)
        elif state.taken == 0:
            del self._lanes[lane]
        return 0

    def remove_if(self, doomed):
        """Drop the records that match (their partition was revoked)."""
        cdef _Lane lane
        cdef list kept
        cdef Py_ssize_t removed = 0, size = 0
        for key in list(self._lanes):
            lane = <_Lane>self._lanes[key]
            kept = []
            for item in lane.items[lane.head:]:
                if doomed(item):
                    removed += 1
                    size += self._added_bytes(item)
                else:
                    kept.append(item)
            lane.items = kept
            lane.head = 0
            if not kept and lane.taken == 0:
                del self._lanes[key]
        self._beyond = 0
        for found in self._lanes.values():
            self._beyond += self._beyond_room(<_Lane>found)
        self._size -= removed
        self.bytes -= size
        self._ready = [lane for lane in self._ready[self._ready_head:] if lane.queued()]
        self._ready_head = 0

    def clear(self):
        """Drop every queued record. Counts of records taken and not done stay (the twin keeps
        its `_taken`): their `done` calls still come."""
        cdef _Lane lane
        for key in list(self._lanes):
            lane = <_Lane>self._lanes[key]
            lane.items = []
            lane.head = 0
            if lane.taken == 0:
                del self._lanes[key]
        self._ready = []
        self._ready_head = 0
        self._size = 0
        self._beyond = 0
        self.bytes = 0
