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
       argument checks), and get/set a slot through its member descriptor, skipping the type
       attribute lookup that getattr/setattr would do. */
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
    /* Read an attribute through the getter of its getset descriptor (`getter` below): what
       `obj.name` ends in for an extension type's attribute, without the type lookup and the
       descriptor's dispatch. Only for objects of the descriptor's own type. */
    typedef struct { getter get; void *closure; } pyrallel_getter;
    static int pyrallel_find_getter(PyObject *descr, pyrallel_getter *found) {
        if (Py_TYPE(descr) != &PyGetSetDescr_Type) return 0;
        PyGetSetDef *def = ((PyGetSetDescrObject *)descr)->d_getset;
        if (def->get == NULL) return 0;
        found->get = def->get;
        found->closure = def->closure;
        return 1;
    }
    static PyObject *pyrallel_call_getter(pyrallel_getter *g, PyObject *obj) {
        return g->get(obj, g->closure);
    }
    """
    object pyrallel_alloc_instance(object type)
    int pyrallel_set_slot(object descr, object obj, object value) except -1
    object pyrallel_get_slot(object descr, object obj)
    ctypedef struct pyrallel_getter:
        pass
    bint pyrallel_find_getter(object descr, pyrallel_getter *found)
    object pyrallel_call_getter(pyrallel_getter *g, object obj)

cdef enum:
    RECORD_BATCH = 0     # batch tags: the first item of the top-level array
    RESULT_BATCH = 1
    RECORD_FIELDS = 8    # items per record / per result
    RESULT_FIELDS = 4
    RESULT_WITH_OUTPUTS = 5
    OUTPUT_FIELDS = 5
    NAME_CACHE_SIZE = 8  # header positions whose names are remembered between records

# Records are built by setting their slots directly; that needs Record to be exactly the slotted
# class in record.py. If it ever stops being one, decoding falls back to calling Record(...).
# The native Record (ext/records.pxi, what record.py binds when built) is such a fallback for
# decoding, whose constructor is a C call already; its attributes are read by calling their
# getters (`_GETTERS`), for the encoding the process engine's parent does per record.
cdef object _RECORD = Record
cdef bint _FAST_RECORD = False
cdef object _SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY, _SLOT_VALUE, _SLOT_HEADERS
cdef object _SLOT_TIMESTAMP  # the member descriptors of the Record slots
cdef enum:
    F_TOPIC
    F_PARTITION
    F_OFFSET
    F_KEY
    F_VALUE
    F_HEADERS
    F_TIMESTAMP
    F_COUNT
cdef bint _GETTER_RECORD = False
cdef pyrallel_getter _GETTERS[F_COUNT]  # the Record attributes' getters, in F_ order


cdef _init_record_slots():
    global _FAST_RECORD, _SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY, _SLOT_VALUE
    global _SLOT_HEADERS, _SLOT_TIMESTAMP, _GETTER_RECORD
    names = ("topic", "partition", "offset", "key", "value", "headers", "timestamp")
    slots = [Record.__dict__.get(name) for name in names]
    cdef int i
    _GETTER_RECORD = True
    for i in range(F_COUNT):
        if slots[i] is None or not pyrallel_find_getter(slots[i], &_GETTERS[i]):
            _GETTER_RECORD = False
    if not all(isinstance(slot, types.MemberDescriptorType) for slot in slots):
        _FAST_RECORD = False
        return
    (_SLOT_TOPIC, _SLOT_PARTITION, _SLOT_OFFSET, _SLOT_KEY, _SLOT_VALUE, _SLOT_HEADERS,
     _SLOT_TIMESTAMP) = slots
    _FAST_RECORD = True


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


# ---------------------------------------------------------------------------------------------
# Encoding: a growable buffer and the msgpack forms the package would choose.


cdef struct _Writer:
    uint8_t *data
    Py_ssize_t size
    Py_ssize_t capacity


cdef int _writer_init(_Writer *w, Py_ssize_t capacity) except -1:
    w.data = <uint8_t *>PyMem_Malloc(capacity)
    if w.data == NULL:
        raise MemoryError()
    w.size = 0
    w.capacity = capacity
    return 0


cdef int _grow(_Writer *w, Py_ssize_t extra) except -1:
    cdef Py_ssize_t capacity = w.capacity * 2
    cdef uint8_t *data
    if capacity < w.size + extra:
        capacity = w.size + extra
    data = <uint8_t *>PyMem_Realloc(w.data, capacity)
    if data == NULL:
        raise MemoryError()
    w.data = data
    w.capacity = capacity
    return 0


cdef inline int _reserve(_Writer *w, Py_ssize_t extra) except -1:
    if w.size + extra > w.capacity:
        return _grow(w, extra)
    return 0


cdef inline void _store16(uint8_t *p, uint16_t x) noexcept:
    p[0] = <uint8_t>(x >> 8)
    p[1] = <uint8_t>x


cdef inline void _store32(uint8_t *p, uint32_t x) noexcept:
    p[0] = <uint8_t>(x >> 24)
    p[1] = <uint8_t>(x >> 16)
    p[2] = <uint8_t>(x >> 8)
    p[3] = <uint8_t>x


cdef inline void _store64(uint8_t *p, uint64_t x) noexcept:
    _store32(p, <uint32_t>(x >> 32))
    _store32(p + 4, <uint32_t>x)


cdef inline int _write_byte(_Writer *w, uint8_t b) except -1:
    _reserve(w, 1)
    w.data[w.size] = b
    w.size += 1
    return 0


cdef inline int _write_header(_Writer *w, Py_ssize_t length, uint8_t fix_base, uint8_t fix_limit,
                              uint8_t code8, uint8_t code16, uint8_t code32) except -1:
    """The length prefix of a str, bin or array (code8 == 0: the form has no 8-bit length)."""
    cdef uint8_t *p
    _reserve(w, 5)
    p = w.data + w.size
    if length < fix_limit:
        p[0] = fix_base | <uint8_t>length
        w.size += 1
    elif length < 0x100 and code8:
        p[0] = code8
        p[1] = <uint8_t>length
        w.size += 2
    elif length < 0x10000:
        p[0] = code16
        _store16(p + 1, <uint16_t>length)
        w.size += 3
    elif length <= 0xFFFFFFFF:
        p[0] = code32
        _store32(p + 1, <uint32_t>length)
        w.size += 5
    else:
        raise _error(f"a string, bytes or list of {length} items is too long for msgpack")
    return 0


cdef inline int _write_array_header(_Writer *w, Py_ssize_t length) except -1:
    return _write_header(w, length, 0x90, 16, 0, 0xdc, 0xdd)


cdef int _write_int(_Writer *w, object value, str field) except -1:
    cdef int overflow = 0
    cdef long long x
    cdef uint8_t *p
    if not PyLong_Check(value) or PyBool_Check(value):
        raise _error(f"{field} must be an int, got {type(value).__name__}")
    x = PyLong_AsLongLongAndOverflow(value, &overflow)
    if overflow:
        return _write_big_int(w, value, overflow, field)
    _reserve(w, 9)
    p = w.data + w.size
    if x < -32:
        if x < -32768:
            if x < -2147483648:
                p[0] = 0xd3
                _store64(p + 1, <uint64_t>x)
                w.size += 9
            else:
                p[0] = 0xd2
                _store32(p + 1, <uint32_t>x)
                w.size += 5
        elif x < -128:
            p[0] = 0xd1
            _store16(p + 1, <uint16_t>x)
            w.size += 3
        else:
            p[0] = 0xd0
            p[1] = <uint8_t>x
            w.size += 2
    elif x < 128:
        p[0] = <uint8_t>x  # positive or negative fixint
        w.size += 1
    elif x < 0x100:
        p[0] = 0xcc
        p[1] = <uint8_t>x
        w.size += 2
    elif x < 0x10000:
        p[0] = 0xcd
        _store16(p + 1, <uint16_t>x)
        w.size += 3
    elif x < 0x100000000:
        p[0] = 0xce
        _store32(p + 1, <uint32_t>x)
        w.size += 5
    else:
        p[0] = 0xcf
        _store64(p + 1, <uint64_t>x)
        w.size += 9
    return 0


cdef int _write_uint(_Writer *w, object value, str field) except -1:
    """An int that must not be negative (a count): _write_int plus the sign check."""
    if PyLong_Check(value) and not PyBool_Check(value) and value < 0:
        raise _error(f"{field} must be >= 0, got {value}")
    return _write_int(w, value, field)


cdef int _write_big_int(_Writer *w, object value, int overflow, str field) except -1:
    # Above the long long range msgpack still has uint64; below it there is nothing.
    if overflow < 0 or value > 0xFFFFFFFFFFFFFFFF:
        raise _error(f"{field} {value} does not fit in a msgpack integer (int64 or uint64)")
    _reserve(w, 9)
    w.data[w.size] = 0xcf
    _store64(w.data + w.size + 1, <uint64_t>value)
    w.size += 9
    return 0


cdef inline int _write_raw(_Writer *w, const char *data, Py_ssize_t size) except -1:
    _reserve(w, size)
    memcpy(w.data + w.size, data, size)
    w.size += size
    return 0


cdef int _write_str(_Writer *w, object value, str field) except -1:
    cdef Py_ssize_t size
    cdef const char *data
    if not PyUnicode_Check(value):
        raise _error(f"{field} must be a str, got {type(value).__name__}")
    try:
        data = PyUnicode_AsUTF8AndSize(value, &size)  # cached on the str; no copy for ASCII
    except UnicodeEncodeError as exc:
        raise _error(f"{field} is not encodable as UTF-8: {exc}") from exc
    _write_header(w, size, 0xa0, 32, 0xd9, 0xda, 0xdb)
    return _write_raw(w, data, size)


cdef int _write_optional_str(_Writer *w, object value, str field) except -1:
    if value is None:
        return _write_byte(w, 0xc0)
    return _write_str(w, value, field)


cdef int _write_optional_bin(_Writer *w, object value, str field) except -1:
    if value is None:
        return _write_byte(w, 0xc0)
    if PyBytes_Check(value):
        _write_header(w, PyBytes_GET_SIZE(value), 0xc4, 0, 0xc4, 0xc5, 0xc6)
        return _write_raw(w, PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value))
    if PyByteArray_Check(value):
        _write_header(w, PyByteArray_GET_SIZE(value), 0xc4, 0, 0xc4, 0xc5, 0xc6)
        return _write_raw(w, PyByteArray_AS_STRING(value), PyByteArray_GET_SIZE(value))
    raise _error(f"{field} must be bytes or None, got {type(value).__name__}")


cdef int _write_headers(_Writer *w, object headers) except -1:
    cdef Py_ssize_t i, n
    if headers is None:
        return _write_byte(w, 0xc0)
    if type(headers) is not list and type(headers) is not tuple:
        raise _error(f"headers must be a list of (name, value) pairs, got {type(headers).__name__}")
    n = len(headers)
    _write_array_header(w, n)
    for i in range(n):
        header = headers[i]
        if (type(header) is not tuple and type(header) is not list) or len(header) != 2:
            raise _error(f"header {i} must be a (name, value) pair, got {header!r:.80}")
        _write_byte(w, 0x92)
        _write_str(w, header[0], "header name")
        _write_optional_bin(w, header[1], "header value")
    return 0


cdef inline object _as_sequence(object items, str what):
    if type(items) is list or type(items) is tuple:
        return items
    try:
        return list(items)
    except TypeError as exc:
        raise _error(f"{what} must be a sequence, got {type(items).__name__}") from exc


cdef inline object _pair_at(object items, Py_ssize_t i, Py_ssize_t size, str what):
    entry = items[i]
    # isinstance, not an exact type: codec.Result is a NamedTuple (a tuple subclass).
    if not (isinstance(entry, tuple) or isinstance(entry, list)) or len(entry) != size:
        raise _error(f"{what} {i} must be a tuple of {size} items, got {entry!r:.80}")
    return entry


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
            if _FAST_RECORD and type(record) is _RECORD:  # read the slots without the lookup
                _write_str(&w, pyrallel_get_slot(_SLOT_TOPIC, record), "topic")
                _write_int(&w, pyrallel_get_slot(_SLOT_PARTITION, record), "partition")
                _write_int(&w, pyrallel_get_slot(_SLOT_OFFSET, record), "offset")
                _write_optional_bin(&w, pyrallel_get_slot(_SLOT_KEY, record), "key")
                _write_optional_bin(&w, pyrallel_get_slot(_SLOT_VALUE, record), "value")
                _write_headers(&w, pyrallel_get_slot(_SLOT_HEADERS, record))
                _write_int(&w, pyrallel_get_slot(_SLOT_TIMESTAMP, record), "timestamp")
            elif _GETTER_RECORD and type(record) is _RECORD:  # the native Record's getters
                _write_str(&w, pyrallel_call_getter(&_GETTERS[F_TOPIC], record), "topic")
                _write_int(&w, pyrallel_call_getter(&_GETTERS[F_PARTITION], record), "partition")
                _write_int(&w, pyrallel_call_getter(&_GETTERS[F_OFFSET], record), "offset")
                _write_optional_bin(&w, pyrallel_call_getter(&_GETTERS[F_KEY], record), "key")
                _write_optional_bin(&w, pyrallel_call_getter(&_GETTERS[F_VALUE], record), "value")
                _write_headers(&w, pyrallel_call_getter(&_GETTERS[F_HEADERS], record))
                _write_int(
                    &w, pyrallel_call_getter(&_GETTERS[F_TIMESTAMP], record), "timestamp"
                )
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


cdef int _write_outputs(_Writer *w, object outputs) except -1:
    cdef Py_ssize_t j, m
    if type(outputs) is not list and type(outputs) is not tuple:
        raise _error(f"outputs must be a list of Outputs, got {type(outputs).__name__}")
    m = len(outputs)
    _write_array_header(w, m)
    for j in range(m):
        output = outputs[j]
        try:
            topic, value, key = output.topic, output.value, output.key
            headers, partition = output.headers, output.partition
        except AttributeError:
            raise _error(f"output {j} is not an Output: {output!r:.80}") from None
        _write_byte(w, 0x90 | OUTPUT_FIELDS)
        _write_str(w, topic, "output topic")
        _write_optional_bin(w, value, "output value")
        _write_optional_bin(w, key, "output key")
        _write_headers(w, headers)
        if partition is None:
            _write_byte(w, 0xc0)
        else:
            _write_int(w, partition, "output partition")
    return 0


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


# ---------------------------------------------------------------------------------------------
# Decoding: a cursor over the input; every read checks that its bytes are there first.


cdef struct _Reader:
    const uint8_t *start
    const uint8_t *pos
    const uint8_t *end


cdef object _truncated(_Reader *r, str field):
    return _error(f"truncated input: {field} runs past the end of the {r.end - r.start} bytes")


cdef object _unexpected(_Reader *r, str field, str expected):
    return _error(
        f"expected {expected} for {field} at byte {r.pos - r.start}, "
        f"got msgpack type byte 0x{r.pos[0]:02x}"
    )


cdef inline int _need(_Reader *r, Py_ssize_t size, str field) except -1:
    if r.end - r.pos < size:
        raise _truncated(r, field)
    return 0


cdef inline uint16_t _load16(const uint8_t *p) noexcept:
    return (<uint16_t>p[0] << 8) | p[1]


cdef inline uint32_t _load32(const uint8_t *p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef inline uint64_t _load64(const uint8_t *p) noexcept:
    return (<uint64_t>_load32(p) << 32) | _load32(p + 4)


cdef Py_ssize_t _read_length(_Reader *r, uint8_t code, uint8_t code8, uint8_t code16,
                             uint8_t code32, str field) except -1:
    """The length after a str/bin/array type byte (already checked to be one of the codes)."""
    cdef Py_ssize_t length
    if code == code8 and code8:
        _need(r, 2, field)
        length = r.pos[1]
        r.pos += 2
    elif code == code16:
        _need(r, 3, field)
        length = _load16(r.pos + 1)
        r.pos += 3
    else:
        _need(r, 5, field)
        length = _load32(r.pos + 1)
        r.pos += 5
    return length


cdef Py_ssize_t _read_array_header(_Reader *r, str field) except -1:
    cdef uint8_t code
    cdef Py_ssize_t length
    _need(r, 1, field)
    code = r.pos[0]
    if 0x90 <= code <= 0x9f:
        r.pos += 1
        return code & 0x0f
    if code != 0xdc and code != 0xdd:
        raise _unexpected(r, field, "an array")
    length = _read_length(r, code, 0, 0xdc, 0xdd, field)
    # Every item takes at least one byte: a count beyond what is left is corrupt, and must not
    # make us loop (or allocate) for billions of items.
    if length > r.end - r.pos:
        raise _error(f"{field} claims {length} items but only {r.end - r.pos} bytes remain")
    return length


cdef int _read_fixed_array(_Reader *r, Py_ssize_t size, str field) except -1:
    cdef Py_ssize_t length = _read_array_header(r, field)
    if length != size:
        raise _error(f"{field} must have {size} items, got {length} (ending at byte "
                     f"{r.pos - r.start})")
    return 0


cdef object _read_int(_Reader *r, str field):
    cdef uint8_t code
    cdef const uint8_t *p
    _need(r, 1, field)
    p = r.pos
    code = p[0]
    if code <= 0x7f:
        r.pos += 1
        return PyLong_FromLongLong(code)
    if code >= 0xe0:
        r.pos += 1
        return PyLong_FromLongLong(<int8_t>code)
    if code == 0xcc:
        _need(r, 2, field)
        r.pos += 2
        return PyLong_FromLongLong(p[1])
    if code == 0xd0:
        _need(r, 2, field)
        r.pos += 2
        return PyLong_FromLongLong(<int8_t>p[1])
    if code == 0xcd:
        _need(r, 3, field)
        r.pos += 3
        return PyLong_FromLongLong(_load16(p + 1))
    if code == 0xd1:
        _need(r, 3, field)
        r.pos += 3
        return PyLong_FromLongLong(<int16_t>_load16(p + 1))
    if code == 0xce:
        _need(r, 5, field)
        r.pos += 5
        return PyLong_FromLongLong(_load32(p + 1))
    if code == 0xd2:
        _need(r, 5, field)
        r.pos += 5
        return PyLong_FromLongLong(<int32_t>_load32(p + 1))
    if code == 0xcf:
        _need(r, 9, field)
        r.pos += 9
        return PyLong_FromUnsignedLongLong(_load64(p + 1))
    if code == 0xd3:
        _need(r, 9, field)
        r.pos += 9
        return PyLong_FromLongLong(<int64_t>_load64(p + 1))
    raise _unexpected(r, field, "an integer")


cdef object _read_uint(_Reader *r, str field):
    """An int that must not be negative (a count), in any msgpack int form."""
    cdef const uint8_t *p
    _need(r, 1, field)
    p = r.pos
    value = _read_int(r, field)
    # Only negative fixint and the int8..int64 forms can hold a negative value.
    if (p[0] >= 0xe0 or 0xd0 <= p[0] <= 0xd3) and value < 0:
        raise _error(f"{field} at byte {p - r.start} must be >= 0, got {value}")
    return value


cdef Py_ssize_t _read_str_header(_Reader *r, str field) except -1:
    """Consume a str type and length; check the bytes are there. Returns the length."""
    cdef uint8_t code
    cdef Py_ssize_t length
    _need(r, 1, field)
    code = r.pos[0]
    if 0xa0 <= code <= 0xbf:
        length = code & 0x1f
        r.pos += 1
    elif code == 0xd9 or code == 0xda or code == 0xdb:
        length = _read_length(r, code, 0xd9, 0xda, 0xdb, field)
    else:
        raise _unexpected(r, field, "a string")
    _need(r, length, field)
    return length


cdef object _decode_utf8(_Reader *r, Py_ssize_t length, str field):
    try:
        value = PyUnicode_DecodeUTF8(<const char *>r.pos, length, NULL)
    except UnicodeDecodeError as exc:
        raise _error(f"{field} at byte {r.pos - r.start} is not valid UTF-8: {exc}") from exc
    r.pos += length
    return value


cdef object _read_str(_Reader *r, str field):
    return _decode_utf8(r, _read_str_header(r, field), field)


cdef struct _NameCache:
    # The last string decoded in this position: its bytes (inside the input) and its object.
    const uint8_t *data
    Py_ssize_t size


cdef object _read_cached_str(_Reader *r, _NameCache *cache, list objects, Py_ssize_t slot,
                             str field):
    """A string that usually repeats from one record to the next (the topic, header names):
    reuse the previous str object when the bytes match instead of decoding a new one."""
    cdef Py_ssize_t length = _read_str_header(r, field)
    if cache.data != NULL and cache.size == length and memcmp(cache.data, r.pos, length) == 0:
        r.pos += length
        return objects[slot]
    cache.data = r.pos
    cache.size = length
    value = _decode_utf8(r, length, field)
    objects[slot] = value
    return value


cdef object _read_optional_bin(_Reader *r, str field):
    cdef uint8_t code
    cdef Py_ssize_t length
    _need(r, 1, field)
    code = r.pos[0]
    if code == 0xc0:
        r.pos += 1
        return None
    if code != 0xc4 and code != 0xc5 and code != 0xc6:
        raise _unexpected(r, field, "bytes or nil")
    length = _read_length(r, code, 0xc4, 0xc5, 0xc6, field)
    _need(r, length, field)
    value = PyBytes_FromStringAndSize(<const char *>r.pos, length)
    r.pos += length
    return value


cdef object _read_optional_str(_Reader *r, str field):
    _need(r, 1, field)
    if r.pos[0] == 0xc0:
        r.pos += 1
        return None
    return _read_str(r, field)


cdef object _read_headers(_Reader *r, _NameCache *caches, list names):
    cdef Py_ssize_t i, n
    _need(r, 1, "headers")
    if r.pos[0] == 0xc0:
        r.pos += 1
        return None
    n = _read_array_header(r, "headers")
    headers = []
    for i in range(n):
        _read_fixed_array(r, 2, "header")
        if i < NAME_CACHE_SIZE:
            name = _read_cached_str(r, &caches[i], names, i, "header name")
        else:
            name = _read_str(r, "header name")
        headers.append((name, _read_optional_bin(r, "header value")))
    return headers


cdef int _read_batch_start(_Reader *r, long tag, str batch) except -1:
    """Consume `[tag, ` and check the tag (any msgpack int form, as msgpack would accept)."""
    _read_fixed_array(r, 2, batch)
    found = _read_int(r, "batch tag")
    if found != tag:
        kinds = {RECORD_BATCH: "a record batch", RESULT_BATCH: "a result batch"}
        raise _error(f"expected a {batch} (tag {tag}), got {kinds.get(found, 'an unknown tag')} "
                     f"(tag {found})")
    return 0


cdef int _open_input(object data, Py_buffer *view, _Reader *r) except -1:
    if PyObject_GetBuffer(data, view, PyBUF_SIMPLE) < 0:
        return -1
    r.start = <const uint8_t *>view.buf
    r.pos = r.start
    r.end = r.start + view.len
    return 0


cdef int _check_end(_Reader *r) except -1:
    if r.pos != r.end:
        raise _error(f"{r.end - r.pos} unexpected bytes after the batch (at byte "
                     f"{r.pos - r.start})")
    return 0


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


cdef object _read_outputs(_Reader *r, _NameCache *caches, list names):
    """The outputs field of a result: nil, or an array of [topic, value, key, headers,
    partition] arrays, each built into an output.Output."""
    cdef Py_ssize_t j, m
    global _output_type
    _need(r, 1, "outputs")
    if r.pos[0] == 0xc0:
        r.pos += 1
        return None
    if _output_type is None:
        from pyrallel_consumer.output import Output
        _output_type = Output
    m = _read_array_header(r, "outputs")
    outputs = []
    for j in range(m):
        _read_fixed_array(r, OUTPUT_FIELDS, "output")
        topic = _read_str(r, "output topic")
        if not topic:
            raise _error(f"output topic is empty (at byte {r.pos - r.start})")
        value = _read_optional_bin(r, "output value")
        key = _read_optional_bin(r, "output key")
        headers = _read_headers(r, caches, names)
        _need(r, 1, "output partition")
        if r.pos[0] == 0xc0:
            r.pos += 1
            partition = None
        else:
            partition = _read_int(r, "output partition")
            if partition < 0:
                raise _error(f"output partition {partition} is negative (at byte "
                             f"{r.pos - r.start})")
        outputs.append(_output_type(topic, value, key, headers, partition))
    return outputs


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
