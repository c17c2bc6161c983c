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


# The message methods the intake calls, in this order, eight per record.
cdef enum:
    M_ERROR
    M_TOPIC
    M_PARTITION
    M_OFFSET
    M_KEY
    M_VALUE
    M_HEADERS
    M_TIMESTAMP
    M_COUNT

cdef tuple METHOD_NAMES = (
    "error", "topic", "partition", "offset", "key", "value", "headers", "timestamp"
)

cdef extern from *:
    """
    /* The C function behind a method descriptor that takes no arguments (METH_NOARGS, as the
       message methods of confluent-kafka's C extension are), or NULL for anything else. */
    static void *pyrallel_noargs_function(PyObject *descriptor) {
        if (Py_TYPE(descriptor) != &PyMethodDescr_Type) return NULL;
        PyMethodDef *def = ((PyMethodDescrObject *)descriptor)->d_method;
        int kinds = METH_VARARGS | METH_KEYWORDS | METH_NOARGS | METH_O | METH_FASTCALL
#ifdef METH_METHOD
            | METH_METHOD
#endif
            ;
        if ((def->ml_flags & kinds) != METH_NOARGS) return NULL;
        return (void *)def->ml_meth;
    }
    /* Call such a function on `self`: what `self.method()` ends in, without the lookup. */
    static PyObject *pyrallel_call_noargs(void *function, PyObject *self) {
        return ((PyCFunction)function)(self, NULL);
    }
    """
    void *pyrallel_noargs_function(object descriptor)
    object pyrallel_call_noargs(void *function, object self)


# A message class whose eight methods are C functions taking no arguments (confluent-kafka's
# Message), found on the first message of that class: its records are read by calling those
# functions directly, without looking the methods up by name for every record (eight lookups
# and method calls were about a fifth of the intake, timeit). Messages of any other class
# (the tests' fakes) are read through their methods.
cdef object _direct_class = None
cdef void *_direct[M_COUNT]
cdef set _other_classes = set()


cdef bint _direct_read(object cls):
    """Whether messages of `cls` can be read by direct calls; finds the functions once."""
    global _direct_class
    if cls is _direct_class:
        return True
    if cls in _other_classes:
        return False
    cdef void *found[M_COUNT]
    cdef int i
    for i in range(M_COUNT):
        descriptor = getattr(cls, METHOD_NAMES[i], None)
        found[i] = NULL if descriptor is None else pyrallel_noargs_function(descriptor)
        if found[i] == NULL:
            _other_classes.add(cls)
            return False
    for i in range(M_COUNT):
        _direct[i] = found[i]
    _direct_class = cls
    return True


cdef inline object _read(object message, int method, bint direct):
    """`message.<METHOD_NAMES[method]>()`."""
    if direct:
        return pyrallel_call_noargs(_direct[method], message)
    return getattr(message, METHOD_NAMES[method])()


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
    cdef bint direct
    for message in messages:
        direct = _direct_read(type(message))
        error = _read(message, M_ERROR, direct)
        if error is not None:
            on_error(error)
            continue
        topic = _read(message, M_TOPIC, direct)
        partition = _read(message, M_PARTITION, direct)
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
        offset = _read(message, M_OFFSET, direct)
        if native_state is not None:
            fresh = native_state._receive(offset)
        else:
            fresh = state.receive(offset)
        if not fresh:
            skipped += 1
            continue
        key = _read(message, M_KEY, direct)
        record = Record.__new__(Record)
        record.topic = topic
        record.partition = partition
        record.offset = offset
        record.key = key
        record.value = _read(message, M_VALUE, direct)
        record.headers = _read(message, M_HEADERS, direct)
        record.timestamp = _read(message, M_TIMESTAMP, direct)[1]
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
