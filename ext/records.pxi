# Native twins of `Record` (pyrallel_consumer/record.py) and of `WorkItem`, `Report` and
# `GroupReport` (pyrallel_consumer/work.py), with the same constructors, attributes, reprs and
# equality. Loaded by pyrallel_consumer/native.py; record.py and work.py bind these names when
# built, unless PYRALLEL_NATIVE=0.
#
# Why: every record builds one `Record` and one `WorkItem` on the control thread and one
# `Report` (or a share of a `GroupReport`) on an engine thread. As slotted Python classes each
# costs ~0.3 us to build and is tracked by the cyclic garbage collector, so every record also
# advances the GC generations and their collections walk the objects in flight. These cdef
# classes are built in tens of ns and, being `no_gc`, are never tracked.
#
# Why `no_gc` is safe: an instance of these classes cannot be part of a reference cycle. Their
# attributes hold strings, bytes, ints, floats, Outcome members, None, lists of header tuples or
# of records or of work ids or of Outputs (whose slots hold only str, bytes, ints and header
# lists), and a WorkItem's `owner`, a PartitionState (which refers to no work item). What would
# break it: an attribute that leads back to the instance, e.g. an `owner` that keeps its items, or a Record whose `headers` list holds the record. The collector never sees
# such a cycle, so it leaks: keep these attributes free of back references. Python subclasses
# (engines/batching.py's `Piece(WorkItem)`) get GC support of their own for the slots they add,
# so a cycle through those slots (Piece.batch -> its batch -> Piece) is still collected.
#
# Record and WorkItem keep a free list of 1,024 instances each (`cython.freelist`): the
# control thread builds and drops one of each per record, so most come from memory just freed
# instead of the allocator. Cython keeps free lists only for the exact class (never a Python
# subclass such as Piece) and turns them off on a free-threaded Python.
#
# Not thread-safe beyond what the GIL gives attribute access, like the twins.
#

cimport cython

from types import GenericAlias


@cython.no_gc
@cython.freelist(1024)
cdef class Record:
    """One consumed Kafka record: Record(topic, partition, offset, key, value, headers=None,
    timestamp=0); `timestamp` in milliseconds since the epoch. Compared by value, unhashable,
    picklable."""

    cdef public object topic
    cdef public object partition
    cdef public object offset
    cdef public object key
    cdef public object value
    cdef public object headers
    cdef public object timestamp

    def __init__(self, topic, partition, offset, key, value, headers=None, timestamp=0):
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp

    def __repr__(self):
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r})"
        )

    def __eq__(self, other):
        if not isinstance(other, Record):
            return NotImplemented
        cdef Record that = <Record>other
        return (
            self.topic == that.topic
            and self.partition == that.partition
            and self.offset == that.offset
            and self.key == that.key
            and self.value == that.value
            and self.headers == that.headers
            and self.timestamp == that.timestamp
        )

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None  # mutable, compared by value

    def __reduce__(self):
        return (
            Record,
            (self.topic, self.partition, self.offset, self.key, self.value, self.headers,
             self.timestamp),
        )


@cython.no_gc
@cython.freelist(1024)
cdef class WorkItem:
    """WorkItem(id, lane, record, owner, received_at): one record (or, in batch mode, a list
    of them) submitted to an engine; `received_at` and `dispatched_at` in monotonic seconds;
    `cancelled` set by the control thread while the item waits. Subclassable (Piece)."""

    cdef public object id
    cdef public object lane
    cdef public object record
    cdef public object owner  # the control plane's; engines must not use it
    cdef public object received_at
    cdef public object dispatched_at
    cdef public object cancelled
    # Key + value bytes the native Backlog counted when it queued the item (backlog.pxi).
    cdef Py_ssize_t nbytes

    def __init__(self, id, lane, record, owner, received_at):
        self.id = id
        self.lane = lane
        self.record = record
        self.owner = owner
        self.received_at = received_at
        self.dispatched_at = received_at
        self.cancelled = False

    __class_getitem__ = classmethod(GenericAlias)  # WorkItem[Owner], as the twin's Generic


@cython.no_gc
cdef class Report:
    """Report(id, outcome, attempts, completed_at, error=None, outputs=None): an engine's
    report on one work item; `completed_at` in monotonic seconds, `error` the last traceback
    (str) or None, `outputs` a list of output.Output or None."""

    cdef public object id
    cdef public object outcome
    cdef public object attempts
    cdef public object completed_at
    cdef public object error
    cdef public object outputs

    def __init__(self, id, outcome, attempts, completed_at, error=None, outputs=None):
        self.id = id
        self.outcome = outcome
        self.attempts = attempts
        self.completed_at = completed_at
        self.error = error
        self.outputs = outputs

    def __repr__(self):
        return f"Report(id={self.id}, outcome={self.outcome.name}, attempts={self.attempts})"


@cython.no_gc
cdef class GroupReport(Report):
    """GroupReport(ids, outcome, attempts, completed_at, error=None, outputs=None): one report
    on several work items, `ids` a list in submission order; `id` is ids[0]."""

    cdef public object ids

    def __init__(self, ids, outcome, attempts, completed_at, error=None, outputs=None):
        self.id = ids[0]
        self.outcome = outcome
        self.attempts = attempts
        self.completed_at = completed_at
        self.error = error
        self.outputs = outputs
        self.ids = ids

    def __repr__(self):
        return (
            f"GroupReport(ids={self.ids[0]}..{self.ids[-1]} ({len(self.ids)}), "
            f"outcome={self.outcome.name}, attempts={self.attempts})"
        )
