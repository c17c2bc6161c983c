"""The IPC codec, both implementations: malformed input raises CodecError, never crashes."""

from __future__ import annotations

import msgpack
import pytest
from codec_cases import (  # strategies and references shared by the codec tests
    IMPLEMENTATIONS,
    INT64_MIN,
    SETTINGS,
    needs_native,
    record_batches,
    reference_records,
    reference_results,
    result_batches,
    sample_batch,
)
from hypothesis import given
from hypothesis import strategies as st

from pyrallel_consumer.codec import CodecError, load_codec

# --- malformed input -------------------------------------------------------------------------


def test_every_truncation_raises_codec_error(codec) -> None:
    data = codec.encode_records(sample_batch())
    for end in range(len(data)):
        with pytest.raises(CodecError):
            codec.decode_records(data[:end])
    results = codec.encode_results([(1, 0, 1, None), (2, 1, 3, "Traceback ...")])
    for end in range(len(results)):
        with pytest.raises(CodecError):
            codec.decode_results(results[:end])


def test_trailing_bytes_raise_codec_error(codec) -> None:
    with pytest.raises(CodecError, match=r"(?i)extra|unexpected bytes"):
        codec.decode_records(codec.encode_records(sample_batch()) + b"\x00")


def test_wrong_batch_kind_raises_codec_error(codec) -> None:
    with pytest.raises(CodecError, match="tag"):
        codec.decode_records(codec.encode_results([(1, 0, 1, None)]))
    with pytest.raises(CodecError, match="tag"):
        codec.decode_results(codec.encode_records(sample_batch()))


@pytest.mark.parametrize(
    "obj",
    [
        None,
        {},
        [0],
        [0, {}],
        [0, [[1, "t", 0, 0, None, None, None]]],  # 7 fields
        [0, [[1, "t", 0, 0, None, None, None, 0, 9]]],  # 9 fields
        [0, [[1, b"t", 0, 0, None, None, None, 0]]],  # topic as bin
        [0, [[1, "t", 0.0, 0, None, None, None, 0]]],  # float partition
        [0, [[1, "t", 0, 0, "k", None, None, 0]]],  # key as str
        [0, [[1, "t", 0, 0, None, None, [["h"]], 0]]],  # header without value
        [0, [[1, "t", 0, 0, None, None, [[b"h", b""]], 0]]],  # header name as bin
        [0, [[1, "t", 0, 0, None, None, {"h": b""}, 0]]],  # headers as a map
        [0, [[True, "t", 0, 0, None, None, None, 0]]],  # bool work_id
        [0, [[1, "t", 0, 0, None, None, None, None]]],  # nil timestamp
        [2, []],  # unknown tag
    ],
)
def test_wrong_shapes_raise_codec_error(codec, obj: object) -> None:
    with pytest.raises(CodecError):
        codec.decode_records(msgpack.packb(obj, use_bin_type=True))


@pytest.mark.parametrize(
    "obj",
    [
        [1, [[1, 0, None]]],  # the old three-field shape
        [1, [[1, 0, 1, None, None, None]]],  # 6 fields
        [1, [[1, 0, 1, None, 7]]],  # outputs not an array
        [1, [[1, 0, 1, None, [["t", b"v"]]]]],  # an output of 2 fields
        [1, [[1, 0, 1, None, [["", b"v", None, None, None]]]]],  # empty output topic
        [1, [[1, 0, 1, None, [["t", "v", None, None, None]]]]],  # str output value
        [1, [[1, 0, 1, None, [["t", b"v", None, None, -1]]]]],  # negative partition
        [1, [[1, 0, 1, None, [["t", b"v", None, [["h"]], None]]]]],  # bad output header
        [1, [[1, True]]],
        [1, [[1, True, 1, None]]],  # bool outcome
        [1, [[1, -1, 1, None]]],  # negative outcome
        [1, [[1, 0, 1, b"x"]]],  # error as bin
        [1, [["1", 0, 1, None]]],  # str work_id
        [1, [[True, 0, 1, None]]],  # bool work_id
        [1, [[1, 0, None, None]]],  # nil attempts
        [1, [[1, 0, True, None]]],  # bool attempts
        [1, [[1, 0, 1.0, None]]],  # float attempts
        [1, [[1, 0, "1", None]]],  # str attempts
        [1, [[1, 0, -1, None]]],  # negative attempts (fixint)
        [1, [[1, 0, -200, None]]],  # negative attempts (int16)
        [1, [[1, 0, INT64_MIN, None]]],  # negative attempts (int64)
        [1, [[1, 0, 1, None], [2, 1, -1, "x"]]],  # a later item is bad
        [1, {}],
        [0, []],  # record batch tag
    ],
)
def test_wrong_result_shapes_raise_codec_error(codec, obj: object) -> None:
    with pytest.raises(CodecError):
        codec.decode_results(msgpack.packb(obj, use_bin_type=True))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x92\x00\xdd\xff\xff\xff\xff",  # claims 4 billion records
        b"\x92\x00\x91\x98\x01\xdb\xff\xff\xff\xff",  # topic claims 4 GiB
        b"\x92\x00\x91\x98\x01\xa2\xff\xfe",  # topic is not UTF-8
    ],
)
def test_garbage_raises_codec_error(codec, data: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode_records(data)


@SETTINGS
@given(data=st.binary(max_size=200))
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_random_bytes_raise_codec_error_or_decode(name: str, data: bytes) -> None:
    codec = load_codec(name)
    for decode in (codec.decode_records, codec.decode_results):
        try:
            decoded = decode(data)
        except CodecError:
            continue
        assert isinstance(decoded, list)


def _outcome(decode, data: bytes) -> object:
    try:
        return decode(data)
    except CodecError:
        return CodecError


@needs_native
@SETTINGS
@given(items=record_batches.filter(bool), position=st.integers(0), byte=st.integers(0, 255))
def test_both_implementations_agree_on_corrupted_batches(items, position: int, byte: int) -> None:
    """Flip one byte: both must reject it, or both decode it to the same records."""
    data = bytearray(reference_records(items))
    data[position % len(data)] = byte
    native, twin = load_codec("native"), load_codec("msgpack")
    assert _outcome(native.decode_records, bytes(data)) == _outcome(
        twin.decode_records, bytes(data)
    )


@needs_native
@SETTINGS
@given(results=result_batches.filter(bool), position=st.integers(0), byte=st.integers(0, 255))
def test_both_implementations_agree_on_corrupted_result_batches(
    results, position: int, byte: int
) -> None:
    """Flip one byte: both must reject it, or both decode it to the same results."""
    data = bytearray(reference_results(results))
    data[position % len(data)] = byte
    native, twin = load_codec("native"), load_codec("msgpack")
    assert _outcome(native.decode_results, bytes(data)) == _outcome(
        twin.decode_results, bytes(data)
    )


# --- selection -------------------------------------------------------------------------------
