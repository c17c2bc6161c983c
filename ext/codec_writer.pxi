# Part of ext/codec.pyx, included there: encoding, a growable buffer and the msgpack forms the
# package would choose. The module docstring there says what the codec does and why.

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
