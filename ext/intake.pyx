# cython: language_level=3
"""Native twin of pyrallel_consumer/control/intake.py: the same `intake`, with the same
behaviour (that module's docstring says what it does with each message). Loaded by
pyrallel_consumer/native.py; intake.py binds this name when built.

Why it is faster: the pure loop is interpreted, a bytecode round per message attribute, plus a
call of the ordering's lane function per record. Here the loop, the message calls and the
state lookups are C calls, and the lane is built inline from the ordering: (topic, partition,
key) for "key", (topic, partition) for "partition", None for "unordered", exactly what
pyrallel_consumer/ordering.py's functions return (the tests compare both twins on the same
messages). `Record` and `WorkItem` are the classes record.py and work.py bound (native or pure).
"""

from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem

cdef enum:
    BY_KEY
    BY_PARTITION
    UNORDERED


cdef int _lane_kind(str ordering) except -1:
    if ordering == "key":
        return BY_KEY
    if ordering == "partition":
        return BY_PARTITION
    if ordering == "unordered":
        return UNORDERED
    raise ValueError(f"ordering must be 'key', 'partition' or 'unordered'; got {ordering!r}")


def intake(messages, partitions, str ordering, add, Py_ssize_t last_id, double received_at,
           on_error):
    """Turn `messages` into work items numbered from `last_id + 1`, each handed to `add`.
    Returns (the last id used, the records skipped as already completed)."""
    cdef int kind = _lane_kind(ordering)
    cdef Py_ssize_t skipped = 0
    cdef object last_topic = None
    cdef object last_partition = -1
    cdef object state = None
    cdef object lane
    for message in messages:
        error = message.error()
        if error is not None:
            on_error(error)
            continue
        topic = message.topic()
        partition = message.partition()
        if partition != last_partition or topic != last_topic:
            state = partitions.get((topic, partition))
            last_topic = topic
            last_partition = partition
        if state is None:
            continue
        offset = message.offset()
        if not state.receive(offset):
            skipped += 1
            continue
        key = message.key()
        record = Record(
            topic, partition, offset, key, message.value(), message.headers(),
            message.timestamp()[1],
        )
        if kind == BY_KEY:
            lane = (topic, partition, key)
        elif kind == BY_PARTITION:
            lane = (topic, partition)
        else:
            lane = None
        last_id += 1
        add(WorkItem(last_id, lane, record, state, received_at))
    return last_id, skipped
