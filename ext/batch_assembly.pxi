# Native twin of pyrallel_consumer/engines/batch_assembly.py: the same `Batch` and
# `BatchAssembler`, with the same behaviour (that module's docstring says how batches are made
# and lanes held).
#
# Why it is faster: the pure `add` costs two dict lookups and a deque append per record in
# interpreted code, and `_make` takes records off deques one by one. Here `add` is a C loop that
# reads this module's WorkItem lanes as struct fields, and the queues are lists cut in slices.
# The free lanes' order is a list with a head index (backlog.pxi's `_drop_head`), as in the
# twin a deque: the oldest lane is
# found without iterating a dict, whose deleted front entries every `next(iter(...))` steps
# over again (that scan was most of the assembly's quarter of the control thread's time with
# 100 keys, py-spy; the control thread's CPU per record fell by a fifth without it).
# Not thread-safe, like the twin: the batching engine calls it on the control thread only.


cdef class Batch:
    """Records sent together: `items` in batch order, `lanes` the lanes it holds."""

    cdef public object items
    cdef public object lanes

    def __init__(self, items, lanes):
        self.items = items
        self.lanes = lanes


cdef class BatchAssembler:
    """Groups items into batches of up to `batch_size`, honouring lanes (see the twin)."""

    cdef Py_ssize_t _batch_size
    cdef double _max_wait_s
    cdef Py_ssize_t _capacity
    cdef dict _unbatched  # free lanes with records (a list each)
    # The same lanes oldest first, `_order[_head:]`, each as (lane, since when in clock seconds).
    cdef list _order
    cdef Py_ssize_t _head
    cdef Py_ssize_t _unbatched_count
    cdef dict _waiting  # held lanes -> the records waiting for them (a list)
    cdef Py_ssize_t _outstanding  # records given to add() and not yet finished (release)

    def __init__(self, Py_ssize_t batch_size, double max_wait_s, Py_ssize_t capacity):
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._capacity = capacity
        self._unbatched = {}
        self._order = []
        self._head = 0
        self._unbatched_count = 0
        self._waiting = {}
        self._outstanding = 0

    def add(self, items, double now):
        cdef dict held = self._waiting, unbatched = self._unbatched
        cdef Py_ssize_t added = 0, count = 0
        for item in items:
            count += 1
            lane = (<WorkItem>item).lane if type(item) is WorkItem else item.lane
            waiting = held.get(lane)
            if waiting is not None:
                (<list>waiting).append(item)
                continue
            queued = unbatched.get(lane)
            if queued is None:
                queued = []
                unbatched[lane] = queued
                self._free(lane, now)
            (<list>queued).append(item)
            added += 1
        self._outstanding += count
        self._unbatched_count += added

    def release(self, Batch batch not None, double now):
        """`batch` finished: its lanes are free, and their waiting records unbatched."""
        cdef list waiting
        self._outstanding -= len(batch.items)
        for lane in batch.lanes:
            waiting = self._waiting.pop(lane)
            if waiting:
                self._unbatched[lane] = waiting
                self._free(lane, now)
                self._unbatched_count += len(waiting)

    cdef inline void _free(self, object lane, double now):
        """`lane` joins the free lanes with records, last."""
        self._order.append((lane, now))

    cdef inline void _pop_oldest(self):
        """The oldest free lane leaves the order (its records were batched or now wait)."""
        self._head = _drop_head(self._order, self._head)

    def due_in(self, double now, bint running):
        """Seconds until unbatched records must be sent (0: now); None when there are none."""
        if not self._unbatched_count:
            return None
        if self._unbatched_count >= self._batch_size:
            return 0.0
        if self._outstanding >= self._capacity and not running:
            return 0.0
        cdef double oldest = (<tuple>self._order[self._head])[1]
        return max(0.0, oldest + self._max_wait_s - now)

    def take(self, double now, bint running):
        """The batches to send now: every full one, then a partial one when it is due."""
        cdef list batches = []
        while self._unbatched_count >= self._batch_size:
            batches.append(self._make())
        if self.due_in(now, running or bool(batches)) == 0.0:
            batches.append(self._make())
        return batches

    cdef Batch _make(self):
        cdef list items = [], lanes = [], queued, rest
        cdef dict unbatched = self._unbatched
        cdef Py_ssize_t room = self._batch_size, size
        while room and unbatched:
            lane = (<tuple>self._order[self._head])[0]
            queued = <list>unbatched[lane]
            size = len(queued)
            if size <= room:
                del unbatched[lane]
                self._pop_oldest()
                items.extend(queued)
                room -= size
                rest = []
            else:
                items.extend(queued[:room])
                rest = queued[room:]
                room = 0
                if lane is None:
                    unbatched[lane] = rest  # unordered: the rest stays unbatched, in place
                else:  # the rest waits for this batch: no longer unbatched
                    del unbatched[lane]
                    self._pop_oldest()
                    self._unbatched_count -= len(rest)
            if lane is not None:
                self._waiting[lane] = rest
                lanes.append(lane)
        self._unbatched_count -= len(items)
        return Batch(items, lanes)

    def open_items(self):
        """Records not sent yet: unbatched, or waiting for their lane."""
        cdef list out = []
        for queued in self._unbatched.values():
            out.extend(<list>queued)
        for waiting in self._waiting.values():
            out.extend(<list>waiting)
        return out


def piece_lists(items):
    """The records and the ids of `items`, in order; None when one of them is cancelled."""
    cdef list records = [], ids = []
    cdef WorkItem native
    for item in items:
        if type(item) is WorkItem:
            native = <WorkItem>item
            if native.cancelled:
                return None
            records.append(native.record)
            ids.append(native.id)
        else:
            if item.cancelled:
                return None
            records.append(item.record)
            ids.append(item.id)
    return records, ids
