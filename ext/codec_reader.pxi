# Part of ext/codec.pyx, included there: decoding, a cursor over the input; every read checks
# that its bytes are there first. The module docstring there says what the codec does and why.

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
