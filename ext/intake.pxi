# Native twin of pyrallel_consumer/control/intake.py: the same `intake`, with the same
# behaviour (that module's docstring says what it does with each message). Loaded by
# pyrallel_consumer/native.py; intake.py binds this name when built.
#
# Why it is faster: the pure loop is interpreted, a bytecode round per message attribute, plus a
# call of the ordering's lane function per record. Here the loop, the message calls and the
# state lookups are C calls, and the lane comes from the ordering inline: (topic, partition,
# key) for "key", (topic, partition) for "partition", None for "unordered", equal to what
# pyrallel_consumer/ordering.py's functions return (the tests compare both twins on the same
# messages). Equal lanes are mostly one tuple object (kept by the partition state: a key's in a
# bounded cache, the partition's own), which the lane dicts downstream find by identity. The
# records, work items, partition states and backlog are this module's own classes
# (record_path.pyx), so building a record and a work item, recording the offset and queueing
# the item are C calls, not calls through Python's protocol. A partition state or backlog of
# another class (a test's) is called through its Python methods.


cdef enum:
    BY_KEY
    BY_PARTITION
    UNORDERED


# Lanes kept per assigned partition for reuse (PartitionState.lanes), and their count before the
# cache starts over. It bounds the cache's memory where keys rarely repeat (a UUID per record) to
# about 256 x (a dict entry, a 3-tuple and the key) per partition, some 50 KB with 100-byte keys
# (50 MB with 1,000 partitions assigned); a revoked partition's cache goes with its state. 256
# holds every key of a partition in the seed's workloads (100 or 1,000 keys over 8 partitions).
cdef enum:
    LANES_KEPT = 256


cdef object _key_lane(PartitionState state, object topic, object partition, object key):
    """The lane (topic, partition, key), the same tuple object for every record of that key
    while it stays cached: the backlog's and the engines' lane dicts then find it by identity
    instead of comparing three fields, and no tuple is built per record."""
    cdef dict lanes = state.lanes
    lane = lanes.get(key)
    if lane is None:
        if len(lanes) >= LANES_KEPT:
            lanes.clear()
        lane = (topic, partition, key)
        lanes[key] = lane
    return lane


cdef int _lane_kind(str ordering) except -1:
    if ordering == "key":
        return BY_KEY
    if ordering == "partition":
        return BY_PARTITION
    if ordering == "unordered":
        return UNORDERED
    raise ValueError(f"ordering must be 'key', 'partition' or 'unordered'; got {ordering!r}")


def intake(messages, partitions, str ordering, backlog, Py_ssize_t last_id,
           double received_at, on_error):
    """Turn `messages` into work items numbered from `last_id + 1`, each added to `backlog`.
    Returns (the last id used, the records skipped as already completed)."""
    cdef int kind = _lane_kind(ordering)
    cdef Py_ssize_t skipped = 0
    cdef object last_topic = None
    cdef object last_partition = -1
    cdef object state = None
    cdef PartitionState native_state = None
    cdef Backlog native_backlog = backlog if type(backlog) is Backlog else None
    cdef object add = backlog.add
    cdef object lane
    cdef object partition_lane = None
    cdef bint fresh
    cdef Record record
    cdef WorkItem item
    for message in messages:
        error = message.error()
        if error is not None:
            on_error(error)
            continue
        topic = message.topic()
        partition = message.partition()
        if partition != last_partition or topic != last_topic:
            state = partitions.get((topic, partition))
            native_state = state if type(state) is PartitionState else None
            if native_state is None:
                partition_lane = (topic, partition)
            else:
                if native_state.partition_lane is None:
                    native_state.partition_lane = (topic, partition)
                partition_lane = native_state.partition_lane
            last_topic = topic
            last_partition = partition
        if state is None:
            continue
        offset = message.offset()
        if native_state is not None:
            fresh = native_state._receive(offset)
        else:
            fresh = state.receive(offset)
        if not fresh:
            skipped += 1
            continue
        key = message.key()
        record = Record.__new__(Record)
        record.topic = topic
        record.partition = partition
        record.offset = offset
        record.key = key
        record.value = message.value()
        record.headers = message.headers()
        record.timestamp = message.timestamp()[1]
        if kind == BY_KEY:
            if native_state is not None:
                lane = _key_lane(native_state, topic, partition, key)
            else:
                lane = (topic, partition, key)
        elif kind == BY_PARTITION:
            lane = partition_lane
        else:
            lane = None
        last_id += 1
        item = WorkItem.__new__(WorkItem)
        item.id = last_id
        item.lane = lane
        item.record = record
        item.owner = state
        item.received_at = item.dispatched_at = received_at
        item.cancelled = False
        if native_backlog is not None:
            native_backlog._add(item)
        else:
            add(item)
    return last_id, skipped
