# Native twin of pyrallel_consumer/control/completing.py: `unrevoked`, `complete_offsets` and
# `completions`, with the same behaviour (that module's docstring says what each does).
#
# Why it is faster: the pure functions read ten attributes per record through Python's
# descriptor protocol and call the partition state's `complete` through a bound method. Here
# the reads are struct fields of this module's WorkItem, Record and Report, and `complete` is
# a C call. Objects of other classes (tests' fakes) take the Python route.

from pyrallel_consumer.completion import Completion

# _completion below builds Completions of exactly these fields, in this order.
if Completion._fields != (
    "topic", "partition", "offset", "key", "received_at", "completed_at", "attempts", "ok",
    "error", "dispatched_at",
):
    raise ImportError("Completion's fields changed: update ext/completing.pxi")

include "named_tuple.pxi"


cdef object _completion(
    topic, partition, offset, key, received_at, completed_at, attempts, ok, error, dispatched_at
):
    """Completion(topic, ..., dispatched_at), built in one allocation (named_tuple.pxi)."""
    made = pyrallel_named_tuple_alloc(Completion, 10)
    _set_item(made, 0, topic)
    _set_item(made, 1, partition)
    _set_item(made, 2, offset)
    _set_item(made, 3, key)
    _set_item(made, 4, received_at)
    _set_item(made, 5, completed_at)
    _set_item(made, 6, attempts)
    _set_item(made, 7, ok)
    _set_item(made, 8, error)
    _set_item(made, 9, dispatched_at)
    return made


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
            made = _completion(
                record.topic, record.partition, record.offset, record.key,
                item.received_at, report.completed_at, report.attempts, verdict, report.error,
                item.dispatched_at,
            )
        else:
            made = _completion(
                obj.record.topic, obj.record.partition, obj.record.offset,
                obj.record.key, obj.received_at, given.completed_at, given.attempts, verdict,
                given.error, obj.dispatched_at,
            )
        out.append(made)
    return out
