# cython: language_level=3
"""The process engine's IPC codec, compiled: msgpack bytes written and read directly.

The wire format is plain msgpack (the package's `packb(obj, use_bin_type=True)`), so this module
and its twin in pyrallel_consumer/codec.py produce identical bytes and read each other's output:

    record batch (parent -> worker):
        [0, [[work_id, topic, partition, offset, key, value, headers, timestamp], ...]]
        headers = [[name, value], ...] or nil; key, value and header values are bin or nil
    result batch (worker -> parent):
        [1, [[work_id, outcome, attempts, error], ...]]
        outcome = the code of a work.Outcome (int >= 0); attempts = handler attempts (int >= 0);
        error = traceback text (str) or nil; a result with outputs has a fifth field,
        [[topic, value, key, headers, partition], ...] (partition an int or nil), and one
        without them is the four fields as before (codec.py says why)

Why not the msgpack package here: it needs a list of lists built per record before packing and
hands back lists that must be turned into Records after unpacking. This module reads the Record
attributes straight into a growable byte buffer, and builds Records straight from the bytes.

Encoding writes the same minimal forms the msgpack package picks (fixint before int8/uint8, str8
for 32..255 byte strings, and so on). Decoding accepts every msgpack form of the expected types,
checks the bounds of every read and the type of every field, and raises CodecError (from
pyrallel_consumer.codec) with the byte position for anything else; it never reads past the input.

This module is imported by pyrallel_consumer.codec; use that facade rather than this module.
"""

from cpython.bool cimport PyBool_Check
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_Check, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_Check, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_Check, PyLong_FromLongLong, PyLong_FromUnsignedLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.unicode cimport PyUnicode_AsUTF8AndSize, PyUnicode_Check, PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy

import types

from pyrallel_consumer.record import Record

include "named_tuple.pxi"

cdef extern from *:
    """
    /* Allocate an instance without running __init__ (what object.__new__ does, minus the
       argument checks), and get/set a slot through its descriptor (member or getset), skipping
       the type attribute lookup that getattr/setattr would do. */
    static PyObject *pyrallel_alloc_instance(PyObject *type) {
        PyTypeObject *t = (PyTypeObject *)type;
        return t->tp_alloc(t, 0);
    }
    static int pyrallel_set_slot(PyObject *descr, PyObject *obj, PyObject *value) {
        return Py_TYPE(descr)->tp_descr_set(descr, obj, value);
    }
    static PyObject *pyrallel_get_slot(PyObject *descr, PyObject *obj) {
        return Py_TYPE(descr)->tp_descr_get(descr, obj, (PyObject *)Py_TYPE(obj));
    }
    """
    object pyrallel_alloc_instance(object type)
    int pyrallel_set_slot(object descr, object obj, object value) except -1
    object pyrallel_get_slot(object descr, object obj)

cdef enum:
    RECORD_BATCH = 0     # batch tags: the first item of the top-level array
    RESULT_BATCH = 1
    RECORD_FIELDS = 8    # items per record / per result
    RESULT_FIELDS = 4
    RESULT_WITH_OUTPUTS = 5
    OUTPUT_FIELDS = 5
    NAME_CACHE_SIZE = 8  # header positions whose names are remembered between records

# Records are read through the member descriptors of their slots, and built by setting them
# directly; that needs Record to be exactly the slotted class in record.py. The native Record
# (ext/records.pxi, what record.py binds when built) has getset descriptors instead: read through
# them too (`_READ_SLOTS`), for the encoding the process engine's parent does per record, and
# built by calling Record(...), whose constructor is a C call already. Any other Record class is
# read by attribute and built by calling it.
cdef object _RECORD = Record
cdef bint _READ_SLOTS = False  # encoding reads the _SLOT_* descriptors
cdef bint _FAST_RECORD = False  # decoding sets them (member descriptors only)
cdef object _SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY, _SLOT_VALUE, _SLOT_HEADERS
cdef object _SLOT_TIMESTAMP  # the descriptors of the Record attributes


cdef _init_record_slots():
    global _READ_SLOTS, _FAST_RECORD, _SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY
    global _SLOT_VALUE, _SLOT_HEADERS, _SLOT_TIMESTAMP
    names = ("topic", "partition", "offset", "key", "value", "headers", "timestamp")
    slots = [Record.__dict__.get(name) for name in names]
    kinds = (types.MemberDescriptorType, types.GetSetDescriptorType)
    _READ_SLOTS = all(isinstance(slot, kinds) for slot in slots)
    _FAST_RECORD = all(isinstance(slot, types.MemberDescriptorType) for slot in slots)
    if _READ_SLOTS:
        (_SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY, _SLOT_VALUE, _SLOT_HEADERS,
         _SLOT_TIMESTAMP) = slots


_init_record_slots()

cdef object _codec_error_type = None
cdef object _result_type = None  # codec.Result, imported on first use like CodecError
cdef object _output_type = None  # output.Output, likewise


cdef object _in_item(object exc, str what, Py_ssize_t index):
    """Re-raise a CodecError with the batch item it happened in; anything else unchanged."""
    if index >= 0 and _codec_error_type is not None and type(exc) is _codec_error_type:
        return _error(f"{what} {index}: {exc}")
    return exc


cdef object _error(str message):
    """CodecError(message). Imported on first use: codec.py imports this module."""
    global _codec_error_type
    if _codec_error_type is None:
        from pyrallel_consumer.codec import CodecError
        _codec_error_type = CodecError
    return _codec_error_type(message)


include "codec_writer.pxi"


def encode_records(items) -> bytes:
    """Encode [(work_id, Record), ...] as a record batch; same bytes as msgpack.packb."""
    cdef _Writer w
    cdef Py_ssize_t i, n
    items = _as_sequence(items, "items")
    n = len(items)
    _writer_init(&w, 64 + 160 * n)
    i = -1  # the item being worked on, for error messages
    try:
        _write_byte(&w, 0x92)
        _write_byte(&w, RECORD_BATCH)
        _write_array_header(&w, n)
        for i in range(n):
            entry = _pair_at(items, i, 2, "item")
            record = entry[1]
            _reserve(&w, 1)
            w.data[w.size] = 0x90 | RECORD_FIELDS
            w.size += 1
            _write_int(&w, entry[0], "work_id")
            if _READ_SLOTS and type(record) is _RECORD:  # read the slots without the lookup
                _write_str(&w, pyrallel_get_slot(_SLOT_TOPIC, record), "topic")
                _write_int(&w, pyrallel_get_slot(_SLOT_PARTITION, record), "partition")
                _write_int(&w, pyrallel_get_slot(_SLOT_OFFSET, record), "offset")
                _write_optional_bin(&w, pyrallel_get_slot(_SLOT_KEY, record), "key")
                _write_optional_bin(&w, pyrallel_get_slot(_SLOT_VALUE, record), "value")
                _write_headers(&w, pyrallel_get_slot(_SLOT_HEADERS, record))
                _write_int(&w, pyrallel_get_slot(_SLOT_TIMESTAMP, record), "timestamp")
            else:
                _write_str(&w, record.topic, "topic")
                _write_int(&w, record.partition, "partition")
                _write_int(&w, record.offset, "offset")
                _write_optional_bin(&w, record.key, "key")
                _write_optional_bin(&w, record.value, "value")
                _write_headers(&w, record.headers)
                _write_int(&w, record.timestamp, "timestamp")
        return PyBytes_FromStringAndSize(<char *>w.data, w.size)
    except ValueError as exc:  # CodecError is one: say which item could not be encoded
        raise _in_item(exc, "item", i) from exc.__cause__
    finally:
        PyMem_Free(w.data)


def encode_results(results) -> bytes:
    """Encode [Result(work_id, outcome, attempts, error), ...] as a result batch; same bytes
    as msgpack.packb. outcome and attempts must be ints >= 0 (a bool is not one)."""
    cdef _Writer w
    cdef Py_ssize_t i, n
    results = _as_sequence(results, "results")
    n = len(results)
    _writer_init(&w, 64 + 20 * n)
    i = -1  # the item being worked on, for error messages
    try:
        _write_byte(&w, 0x92)
        _write_byte(&w, RESULT_BATCH)
        _write_array_header(&w, n)
        for i in range(n):
            entry = results[i]
            if not (isinstance(entry, tuple) or isinstance(entry, list)) or not (
                len(entry) == RESULT_FIELDS or len(entry) == RESULT_WITH_OUTPUTS
            ):
                raise _error(f"result {i} must be a tuple of 4 or 5 items, got {entry!r:.80}")
            outputs = entry[4] if len(entry) == RESULT_WITH_OUTPUTS else None
            _write_byte(&w, 0x90 | (RESULT_FIELDS if outputs is None else RESULT_WITH_OUTPUTS))
            _write_int(&w, entry[0], "work_id")
            _write_uint(&w, entry[1], "outcome")
            _write_uint(&w, entry[2], "attempts")
            _write_optional_str(&w, entry[3], "error")
            if outputs is not None:
                _write_outputs(&w, outputs)
        return PyBytes_FromStringAndSize(<char *>w.data, w.size)
    except ValueError as exc:
        raise _in_item(exc, "result", i) from exc.__cause__
    finally:
        PyMem_Free(w.data)


include "codec_reader.pxi"


cdef object _new_record(topic, partition, offset, key, value, headers, timestamp):
    if not _FAST_RECORD:
        return _RECORD(topic, partition, offset, key, value, headers, timestamp)
    record = pyrallel_alloc_instance(_RECORD)
    pyrallel_set_slot(_SLOT_TOPIC, record, topic)
    pyrallel_set_slot(_SLOT_PARTITION, record, partition)
    pyrallel_set_slot(_SLOT_OFFSET, record, offset)
    pyrallel_set_slot(_SLOT_KEY, record, key)
    pyrallel_set_slot(_SLOT_VALUE, record, value)
    pyrallel_set_slot(_SLOT_HEADERS, record, headers)
    pyrallel_set_slot(_SLOT_TIMESTAMP, record, timestamp)
    return record


def decode_records(data) -> list:
    """Decode a record batch into [(work_id, Record), ...]; raises CodecError if malformed."""
    cdef Py_buffer view
    cdef _Reader r
    cdef Py_ssize_t i, n
    cdef _NameCache topic_cache
    cdef _NameCache name_caches[NAME_CACHE_SIZE]
    topic_cache.data = NULL
    for i in range(NAME_CACHE_SIZE):
        name_caches[i].data = NULL
    topics = [None]
    names = [None] * NAME_CACHE_SIZE
    out = []
    _open_input(data, &view, &r)
    i = -1  # the item being worked on, for error messages
    try:
        _read_batch_start(&r, RECORD_BATCH, "record batch")
        n = _read_array_header(&r, "records")
        for i in range(n):
            _read_fixed_array(&r, RECORD_FIELDS, "record")
            work_id = _read_int(&r, "work_id")
            topic = _read_cached_str(&r, &topic_cache, topics, 0, "topic")
            partition = _read_int(&r, "partition")
            offset = _read_int(&r, "offset")
            key = _read_optional_bin(&r, "key")
            value = _read_optional_bin(&r, "value")
            headers = _read_headers(&r, name_caches, names)
            timestamp = _read_int(&r, "timestamp")
            out.append((work_id, _new_record(topic, partition, offset, key, value, headers,
                                             timestamp)))
        i = -1
        _check_end(&r)
        return out
    except ValueError as exc:
        raise _in_item(exc, "record", i) from exc.__cause__
    finally:
        PyBuffer_Release(&view)


def decode_results(data) -> list:
    """Decode a result batch into [Result(work_id, outcome, attempts, error), ...]; raises
    CodecError if malformed (including a negative outcome or attempts)."""
    cdef Py_buffer view
    cdef _Reader r
    cdef Py_ssize_t i, n
    cdef _NameCache name_caches[NAME_CACHE_SIZE]
    for i in range(NAME_CACHE_SIZE):
        name_caches[i].data = NULL
    names = [None] * NAME_CACHE_SIZE
    global _result_type
    if _result_type is None:
        from pyrallel_consumer.codec import Result
        if Result._fields != ("work_id", "outcome", "attempts", "error", "outputs"):
            raise ImportError("codec.Result's fields changed: update ext/codec.pyx")
        _result_type = Result
    result_type = _result_type
    out = []
    _open_input(data, &view, &r)
    i = -1  # the item being worked on, for error messages
    try:
        _read_batch_start(&r, RESULT_BATCH, "result batch")
        n = _read_array_header(&r, "results")
        for i in range(n):
            fields = _read_array_header(&r, "result")
            if fields != RESULT_FIELDS and fields != RESULT_WITH_OUTPUTS:
                raise _error(f"result: expected an array of 4 or 5 items, got {fields} (at "
                             f"byte {r.pos - r.start})")
            work_id = _read_int(&r, "work_id")
            outcome = _read_uint(&r, "outcome")
            attempts = _read_uint(&r, "attempts")
            error = _read_optional_str(&r, "error")
            outputs = None
            if fields == RESULT_WITH_OUTPUTS:
                outputs = _read_outputs(&r, name_caches, names)
            # Built in one allocation (named_tuple.pxi): the NamedTuple's __new__ is Python
            # code, tuple.__new__ allocates two tuples more (decode 175 -> 88 ns per result).
            result = pyrallel_named_tuple_alloc(result_type, 5)
            _set_item(result, 0, work_id)
            _set_item(result, 1, outcome)
            _set_item(result, 2, attempts)
            _set_item(result, 3, error)
            _set_item(result, 4, outputs)
            out.append(result)
        i = -1
        _check_end(&r)
        return out
    except ValueError as exc:
        raise _in_item(exc, "result", i) from exc.__cause__
    finally:
        PyBuffer_Release(&view)
