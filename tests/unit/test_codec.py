"""The IPC codec, both implementations: round trips, msgpack byte equality, the switch.

The msgpack package itself is the reference: every batch must be byte-for-byte what
``msgpack.packb(obj, use_bin_type=True)`` produces, whichever implementation encoded it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
from codec_cases import (  # strategies and references shared by the codec tests
    IMPLEMENTATIONS,
    INT64_MIN,
    ROOT,
    SETTINGS,
    UINT64_MAX,
    needs_native,
    record_batches,
    reference_records,
    reference_results,
    result_batches,
    sample_batch,
)
from hypothesis import given

from pyrallel_consumer.codec import CodecError, Result, available_codecs, load_codec
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

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
    assert codec.decode_results(data) == [Result(*r) for r in results]


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
        ((1, 0, None), "4 or 5 items"),  # the old three-field shape
        ((1, 0, 1, None, None, 0), "4 or 5 items"),
        ((1, 0, 1, None, 0), "outputs must be a list"),
        ((1, 0, 1, None, [object()]), "output 0 is not an Output"),
    ],
)
def test_native_rejects_wrong_result_fields_naming_the_field(result: tuple, field: str) -> None:
    with pytest.raises(CodecError, match=f"result 1: .*{field}"):
        load_codec("native").encode_results([(0, 0, 0, None), result])


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


def test_decoded_results_are_whole_named_tuples(codec) -> None:
    """The native codec builds Results without the named tuple's constructor: they must hash,
    compare, unpack, pickle and replace as those built by it (on 3.14+ a tuple caches its hash:
    a cache left at zero would hash every Result to 0)."""
    decoded = codec.decode_results(codec.encode_results([(7, 0, 1, None), (8, 1, 4, "boom")]))
    by_constructor = Result(7, 0, 1, None)
    assert hash(decoded[0]) == hash(by_constructor) == hash(tuple(by_constructor))
    assert hash(decoded[0]) != hash(decoded[1]) and {decoded[0]: 1}[by_constructor] == 1
    work_id, outcome, attempts, error, outputs = decoded[1]
    assert (work_id, outcome, attempts, error, outputs) == (8, 1, 4, "boom", None)
    assert pickle.loads(pickle.dumps(decoded[1])) == Result(8, 1, 4, "boom")
    assert decoded[0]._replace(attempts=2).attempts == 2 and decoded[0].outputs is None
