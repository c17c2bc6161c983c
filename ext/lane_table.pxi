# Native twin of pyrallel_consumer/engines/lane_table.py: the same `Lanes`, with the same
# behaviour (that module's docstring says what it keeps).
#
# Why it is faster: `admit` and `release` run twice per record on a runner's thread, and the
# pure pair costs 240-265 ns per item in method calls and dict lookups made by the interpreter
# (158-172 here, timeit, the calling loop included). Here they are C calls that read this
# module's WorkItem lanes as struct fields, and a lane's waiting items are a list with a head
# index rather than a deque.
# Not thread-safe, like the twin: ThreadLaneRunner calls it under its lock, the coroutine
# runner on its event loop's thread only.

# A lane whose running item has nobody behind it (the twin's _NO_QUEUE): no queue is built for
# it, as most lanes never have more than one item in flight.
cdef object _ALONE = object()


cdef class _Waiting:
    """The items waiting behind a lane's running item, oldest first: `items[head:]` (a list
    with a head index, as backlog.pxi's queues, instead of the twin's deque)."""

    cdef list items
    cdef Py_ssize_t head


cdef class Lanes:
    """Items waiting behind the running item of their lane (see the twin)."""

    cdef dict _waiting  # lane -> _ALONE, or the _Waiting behind its running item

    def __init__(self):
        self._waiting = {}

    def admit(self, item):
        """True when the item may run now; otherwise it waits for its lane."""
        cdef _Waiting queue
        lane = (<WorkItem>item).lane if type(item) is WorkItem else item.lane
        if lane is None:
            return True
        waiting = self._waiting.get(lane)
        if waiting is None:
            self._waiting[lane] = _ALONE
            return True
        if waiting is _ALONE:
            queue = _Waiting.__new__(_Waiting)
            queue.items = [item]
            queue.head = 0
            self._waiting[lane] = queue
        else:
            (<_Waiting>waiting).items.append(item)
        return False

    def release(self, lane):
        """The item of `lane` that may run now that the previous one finished, if any."""
        cdef _Waiting queue
        if lane is None:
            return None
        waiting = self._waiting[lane]
        if waiting is not _ALONE:
            queue = <_Waiting>waiting
            if queue.head < len(queue.items):
                item = queue.items[queue.head]
                queue.head = _drop_head(queue.items, queue.head)
                return item
        del self._waiting[lane]
        return None

    def take_waiting(self):
        """The items waiting behind a running item, lane by lane in submission order, taken
        out: their lanes stay held until their running items are released."""
        cdef list taken = []
        cdef _Waiting queue
        for lane, waiting in self._waiting.items():
            if waiting is not _ALONE:
                queue = <_Waiting>waiting
                taken.extend(queue.items[queue.head:])
                self._waiting[lane] = _ALONE
        return taken

    def __len__(self):
        return len(self._waiting)
