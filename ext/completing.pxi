# Native twin of pyrallel_consumer/control/completing.py: `unrevoked`, `complete_offsets` and
# `completions`, with the same behaviour (that module's docstring says what each does).
#
# Why it is faster: the pure functions read ten attributes per record through Python's
# descriptor protocol and call the partition state's `complete` through a bound method. Here
# the reads are struct fields of this module's WorkItem, Record and Report, and `complete` is
# a C call. Objects of other classes (tests' fakes) take the Python route.

from pyrallel_consumer.completion import Completion

# pyrallel_completion_of below builds Completions of exactly these fields, in this order.
if Completion._fields != (
    "topic", "partition", "offset", "key", "received_at", "completed_at", "attempts", "ok",
    "error", "dispatched_at",
):
    raise ImportError("Completion's fields changed: update ext/completing.pxi")

cdef extern from *:
    """
    /* An instance of `cls`, a named tuple of ten fields (Completion), holding f0..f9: what
       `cls(f0, ..., f9)` builds, in one allocation. The named tuple's `__new__` is Python
       code, and `tuple.__new__(cls, fields)` from C takes a tuple of the fields and one of its
       arguments, two more allocations per record (the allocator was the control thread's
       first cost in a perf profile of batch mode). As CPython's own
       tuple_subtype_new: the type's allocator, the items, the hash cache reset (3.14 caches
       a tuple's hash; a zeroed cache would read as a hash of 0), tracked by the collector. */
    static PyObject *pyrallel_completion_of(
            PyObject *cls, PyObject *f0, PyObject *f1, PyObject *f2, PyObject *f3,
            PyObject *f4, PyObject *f5, PyObject *f6, PyObject *f7, PyObject *f8,
            PyObject *f9) {
        PyObject *fields[10] = {f0, f1, f2, f3, f4, f5, f6, f7, f8, f9};
        PyTypeObject *type = (PyTypeObject *)cls;
        PyObject *made = type->tp_alloc(type, 10);
        if (made == NULL) return NULL;
#if PY_VERSION_HEX >= 0x030E0000
        ((PyTupleObject *)made)->ob_hash = -1;
#endif
        for (Py_ssize_t i = 0; i < 10; i++) {
            Py_INCREF(fields[i]);
            PyTuple_SET_ITEM(made, i, fields[i]);
        }
        if (!PyObject_GC_IsTracked(made)) PyObject_GC_Track(made);
        return made;
    }
    """
    object pyrallel_completion_of(
        object cls, object f0, object f1, object f2, object f3, object f4, object f5,
        object f6, object f7, object f8, object f9)


def unrevoked(items):
    """The items whose partition state (`item.owner`) is not revoked, in order."""
    cdef list live = []
    for obj in items:
        if type(obj) is WorkItem and type((<WorkItem>obj).owner) is PartitionState:
            if not (<PartitionState>(<WorkItem>obj).owner).revoked:
                live.append(obj)
        elif not obj.owner.revoked:
            live.append(obj)
    return live


def complete_offsets(items):
    """Mark each item's record offset completed in its partition state (`item.owner`)."""
    cdef WorkItem item
    for obj in items:
        if type(obj) is WorkItem:
            item = <WorkItem>obj
            if type(item.owner) is PartitionState and type(item.record) is Record:
                (<PartitionState>item.owner)._complete((<Record>item.record).offset)
                continue
        obj.owner.complete(obj.record.offset)


def completions(items, reports, bint ok):
    """One `Completion` per item, under `reports` (a list: items[i] under reports[i]; else one
    report for all)."""
    cdef bint each = type(reports) is list
    verdict = True if ok else False
    cdef list out = []
    cdef Py_ssize_t i = 0
    cdef WorkItem item
    cdef Record record
    cdef Report report
    for obj in items:
        given = reports[i] if each else reports
        i += 1
        if (
            type(obj) is WorkItem
            and type((<WorkItem>obj).record) is Record
            and (type(given) is Report or type(given) is GroupReport)
        ):
            item = <WorkItem>obj
            record = <Record>item.record
            report = <Report>given
            made = pyrallel_completion_of(
                Completion, record.topic, record.partition, record.offset, record.key,
                item.received_at, report.completed_at, report.attempts, verdict, report.error,
                item.dispatched_at,
            )
        else:
            made = pyrallel_completion_of(
                Completion, obj.record.topic, obj.record.partition, obj.record.offset,
                obj.record.key, obj.received_at, given.completed_at, given.attempts, verdict,
                given.error, obj.dispatched_at,
            )
        out.append(made)
    return out
