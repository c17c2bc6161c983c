"""The IPC codec, both implementations: round trips, msgpack byte equality, malformed input.

The msgpack package itself is the reference: every batch must be byte-for-byte what
``msgpack.packb(obj, use_bin_type=True)`` produces, whichever implementation encoded it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyrallel_consumer.codec import CodecError, Result, available_codecs, load_codec
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

ROOT = Path(__file__).resolve().parents[2]
NATIVE_BUILT = "native" in available_codecs()
needs_native = pytest.mark.skipif(
    not NATIVE_BUILT, reason="native codec not built (run `make build-ext`)"
)

IMPLEMENTATIONS = [
    "msgpack",
    pytest.param("native", marks=needs_native),
]

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

# Kafka never hands us lone surrogates, and msgpack (like any UTF-8 encoder) cannot encode them.
texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
long_texts = st.one_of(
    texts,
    st.integers(0, 70_000).map(lambda n: "t" * n),  # across the fixstr/str8/str16/str32 limits
)
wire_ints = st.integers(INT64_MIN, UINT64_MAX)
optional_bytes = st.none() | st.binary(max_size=300)
headers = st.none() | st.lists(st.tuples(texts, optional_bytes), max_size=12)
records = st.builds(
    Record,
    topic=long_texts,
    partition=wire_ints,
    offset=wire_ints,
    key=optional_bytes,
    value=optional_bytes,
    headers=headers,
    timestamp=wire_ints,
)
record_batches = st.lists(st.tuples(wire_ints, records), max_size=20)
attempts = st.integers(0, UINT64_MAX)
outcomes = st.integers(0, UINT64_MAX)  # the codec carries any code; work.Outcome has 0..2
result_batches = st.lists(
    st.builds(Result, wire_ints, outcomes, attempts, st.none() | long_texts), max_size=20
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_records(items: list[tuple[int, Record]]) -> bytes:
    """What the msgpack package produces for a record batch."""
    batch = [
        [
            w,
            r.topic,
            r.partition,
            r.offset,
            r.key,
            r.value,
            None if r.headers is None else [list(h) for h in r.headers],
            r.timestamp,
        ]
        for w, r in items
    ]
    return msgpack.packb([0, batch], use_bin_type=True)


def reference_results(results: list[Result]) -> bytes:
    return msgpack.packb([1, [list(r) for r in results]], use_bin_type=True)


def sample_batch(size: int = 5) -> list[tuple[int, Record]]:
    return [
        (
            i,
            Record(
                "orders",
                i % 3,
                1_000 + i,
                b"k%d" % i if i % 4 else None,
                b"v" * (i * 37),
                [("trace", b"abc"), ("empty", None)] if i % 2 else None,
                1_732_000_000_000 + i,
            ),
        )
        for i in range(size)
    ]


@pytest.fixture(params=IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest):
    return load_codec(request.param)


# --- round trips and byte equality ----------------------------------------------------------


@SETTINGS
@given(items=record_batches)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_record_batch_round_trips_with_msgpack_bytes(name: str, items) -> None:
    codec = load_codec(name)
    data = codec.encode_records(items)
    assert data == reference_records(items)
    assert codec.decode_records(data) == items


@SETTINGS
@given(results=result_batches)
@pytest.mark.parametrize("name", IMPLEMENTATIONS)
def test_result_batch_round_trips_with_msgpack_bytes(name: str, results) -> None:
    codec = load_codec(name)
    data = codec.encode_results(results)
    assert data == reference_results(results)
    assert codec.decode_results(data) == results


@needs_native
@SETTINGS
@given(items=record_batches, results=result_batches)
def test_each_implementation_decodes_the_other(items, results) -> None:
    native, twin = load_codec("native"), load_codec("msgpack")
    assert native.decode_records(twin.encode_records(items)) == items
    assert twin.decode_records(native.encode_records(items)) == items
    assert native.decode_results(twin.encode_results(results)) == results
    assert twin.decode_results(native.encode_results(results)) == results


@pytest.mark.parametrize("size", [0, 255, 256, 65_535, 65_536, 200_000])
def test_large_values_and_length_boundaries(codec, size: int) -> None:
    payload = os.urandom(size)
    items = [(7, Record("t" * (size % 300), 0, size, payload, payload, [("h" * 40, payload)], 0))]
    data = codec.encode_records(items)
    assert data == reference_records(items)
    assert codec.decode_records(data) == items


@pytest.mark.parametrize("count", [0, 1, 15, 16, 65_535, 65_536])
def test_array_length_boundaries(codec, count: int) -> None:
    record = Record("t", 0, 0, None, None)
    items = [(i, record) for i in range(count)]
    data = codec.encode_records(items)
    assert data == reference_records(items)
    assert codec.decode_records(data) == items
    results = [Result(i, i % 3, i % 5, None if i % 3 else "boom") for i in range(count)]
    data = codec.encode_results(results)
    assert data == reference_results(results)
    assert codec.decode_results(data) == results


@pytest.mark.parametrize(
    "value",
    [
        0,
        1,
        127,
        128,
        255,
        256,
        65_535,
        65_536,
        2**32 - 1,
        2**32,
        2**63 - 1,
        2**63,
        UINT64_MAX,
        -1,
        -32,
        -33,
        -128,
        -129,
        -32_768,
        -32_769,
        -(2**31),
        -(2**31) - 1,
        INT64_MIN,
    ],
)
def test_integer_forms_match_msgpack(codec, value: int) -> None:
    items = [(value, Record("t", value, value, None, None, None, value))]
    data = codec.encode_records(items)
    assert data == reference_records(items)
    assert codec.decode_records(data) == items
    results = [(value, 0, max(value, 0), None)]
    data = codec.encode_results(results)
    assert data == reference_results(results)
    assert codec.decode_results(data) == results


@pytest.mark.parametrize("value", [0, 1, 127, 128, 255, 256, 65_535, 65_536, 2**32, UINT64_MAX])
def test_outcome_and_attempts_forms_match_msgpack(codec, value: int) -> None:
    results = [Result(1, 1, value, "Traceback ..."), Result(2, value, value, None)]
    data = codec.encode_results(results)
    assert data == reference_results(results)
    assert codec.decode_results(data) == results


@pytest.mark.parametrize(
    "data",
    [
        b"\x92\x01\x91\x94\x01\x02\xd0\x05\xc0",  # attempts 5 as int8
        b"\x92\x01\x91\x94\x01\x02\xd3\x00\x00\x00\x00\x00\x00\x00\x05\xc0",  # as int64
        b"\x92\x01\x91\x94\x01\x02\xcd\x00\x05\xc0",  # as uint16
    ],
)
def test_attempts_in_any_non_negative_int_form_decodes(codec, data: bytes) -> None:
    assert codec.decode_results(data) == [Result(1, Outcome.CANCELLED.value, 5, None)]


def test_decoded_headers_are_lists_of_tuples(codec) -> None:
    items = [
        (1, Record("t", 0, 0, b"k", b"v", [("a", b"1"), ("b", None)])),
        (2, Record("t", 0, 1, b"k", b"v", [])),
    ]
    decoded = codec.decode_records(codec.encode_records(items))
    assert decoded[0][1].headers == [("a", b"1"), ("b", None)]
    assert type(decoded[0][1].headers) is list and type(decoded[0][1].headers[0]) is tuple
    assert decoded[1][1].headers == []
    assert type(decoded[0][1]) is Record


def test_accepts_any_sequence_and_bytes_like_input(codec) -> None:
    items = sample_batch()
    data = codec.encode_records(tuple(items))
    assert data == reference_records(items)
    assert codec.decode_records(memoryview(data)) == items
    assert codec.decode_records(bytearray(data)) == items


# --- encoding errors -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [2**64, INT64_MIN - 1])
def test_integer_out_of_msgpack_range_raises_codec_error(codec, bad: int) -> None:
    with pytest.raises(CodecError):
        codec.encode_records([(1, Record("t", 0, bad, None, None))])
    with pytest.raises(CodecError):
        codec.encode_results([(bad, 0, 1, None)])
    with pytest.raises(CodecError):
        codec.encode_results([(1, 0, bad, None)])


def test_unencodable_text_raises_codec_error(codec) -> None:
    with pytest.raises(CodecError):
        codec.encode_records([(1, Record("bad\ud800", 0, 0, None, None))])


@needs_native
@pytest.mark.parametrize(
    ("record", "field"),
    [
        (Record(b"topic", 0, 0, None, None), "topic"),  # type: ignore[arg-type]
        (Record("t", "0", 0, None, None), "partition"),  # type: ignore[arg-type]
        (Record("t", 0, 1.5, None, None), "offset"),  # type: ignore[arg-type]
        (Record("t", 0, 0, "key", None), "key"),  # type: ignore[arg-type]
        (Record("t", 0, 0, None, 5), "value"),  # type: ignore[arg-type]
        (Record("t", 0, 0, None, None, [("h",)]), "header"),  # type: ignore[list-item]
        (Record("t", 0, 0, None, None, [(1, b"")]), "header name"),  # type: ignore[list-item]
        (Record("t", 0, 0, None, None, None, True), "timestamp"),  # bool is not a timestamp
    ],
)
def test_native_rejects_wrong_field_types_naming_the_field(record: Record, field: str) -> None:
    with pytest.raises(CodecError, match=field):
        load_codec("native").encode_records([(1, record)])


@needs_native
@pytest.mark.parametrize(
    ("result", "field"),
    [
        (("1", 0, 1, None), "work_id"),
        ((True, 0, 1, None), "work_id"),  # bool is not a work_id
        ((1, True, 1, None), "outcome"),  # bool is not an outcome code
        ((1, -1, 1, None), "outcome"),
        ((1, 0, "1", None), "attempts"),
        ((1, 0, 1.0, None), "attempts"),
        ((1, 0, True, None), "attempts"),  # bool is not a count
        ((1, 0, None, None), "attempts"),
        ((1, 0, -1, None), "attempts"),
        ((1, 0, 1, b"boom"), "error"),
        ((1, 0, None), "4 items"),  # the old three-field shape
        ((1, 0, 1, None, 0), "4 items"),
    ],
)
def test_native_rejects_wrong_result_fields_naming_the_field(result: tuple, field: str) -> None:
    with pytest.raises(CodecError, match=f"result 1: .*{field}"):
        load_codec("native").encode_results([(0, 0, 0, None), result])


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
        [1, [[1, 0, 1, None, None]]],  # 5 fields
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


def _implementation_with(env_value: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYRALLEL_CODEC": env_value, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from pyrallel_consumer import codec; print(codec.IMPLEMENTATION)"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_environment_forces_msgpack() -> None:
    assert _implementation_with("msgpack").stdout.strip() == "msgpack"


@needs_native
def test_environment_selects_native_by_default() -> None:
    assert _implementation_with("auto").stdout.strip() == "native"
    assert _implementation_with("native").stdout.strip() == "native"


def test_environment_rejects_unknown_names() -> None:
    proc = _implementation_with("fast")
    assert proc.returncode != 0
    assert "PYRALLEL_CODEC" in proc.stderr


def test_without_the_extension_auto_falls_back_and_native_says_how_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "pyrallel_consumer._codec", None)  # import now fails
    assert load_codec("auto").name == "msgpack"
    assert available_codecs() == ["msgpack"]
    with pytest.raises(ImportError, match="make build-ext"):
        load_codec("native")


def test_load_codec_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="codec must be one of"):
        load_codec("json")


def test_every_outcome_round_trips_as_a_named_result(codec) -> None:
    """The result carries the engine's Outcome code, so a cancelled item survives the pipe."""
    results = [Result(i, outcome.value, i, None) for i, outcome in enumerate(Outcome)]
    decoded = codec.decode_results(codec.encode_results(results))
    assert [Outcome(r.outcome) for r in decoded] == list(Outcome)
    assert all(type(r) is Result for r in decoded)
    # An Outcome is an IntEnum: it encodes exactly as its code.
    assert codec.encode_results([Result(1, Outcome.CANCELLED, 0, None)]) == codec.encode_results(
        [Result(1, 2, 0, None)]
    )
