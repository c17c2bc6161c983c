"""Commit metadata: encode/decode round trips (property-based) and malformed input."""

from __future__ import annotations

import base64
import random
import string
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from native_twins import needs_native

from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.control.offset_metadata import (
    BITSET,
    MAX_METADATA_BYTES,
    RUN_LENGTH,
    VERSION,
    MetadataError,
    always_fits_span,
    decode,
    encode,
    max_payload,
    relative_offsets,
    run_length_size,
    varint_size,
)
from pyrallel_consumer.native import import_native

BASE64_ALPHABET = set(string.ascii_letters + string.digits + "+/=")

positions = st.integers(min_value=0, max_value=2**62)
# Offsets relative to position + 1: dense small sets and huge sparse ones.
dense_relative = st.sets(st.integers(min_value=0, max_value=5_000), max_size=3_000)
# Spans up to 2**22 offsets (a 512 KiB bitset); larger spans: see test_huge_span_*.
sparse_relative = st.sets(st.integers(min_value=0, max_value=2**22), max_size=2_000)
relative_sets = st.one_of(dense_relative, sparse_relative)


def _check_shape(text: str, limit: int = MAX_METADATA_BYTES) -> None:
    assert len(text) <= limit
    assert text.isascii()
    assert set(text) <= BASE64_ALPHABET
    if text:
        base64.b64decode(text, validate=True)


@settings(max_examples=200, deadline=None)
@given(position=positions, relative=relative_sets)
def test_round_trip(position: int, relative: set[int]) -> None:
    completed = {position + 1 + r for r in relative}
    text, complete = encode(position, completed)
    _check_shape(text)
    decoded = decode(position, text)
    if complete:
        assert decoded == completed
    else:
        assert decoded < completed  # a strict, non-empty-gap prefix of what completed
        # The prefix is a prefix: everything kept is below everything dropped.
        dropped = completed - decoded
        assert not decoded or max(decoded) < min(dropped)


@settings(max_examples=100, deadline=None)
@given(
    position=positions,
    relative=relative_sets,
    below=st.sets(st.integers(min_value=0, max_value=1_000), max_size=50),
)
def test_offsets_at_or_below_position_are_ignored(
    position: int, relative: set[int], below: set[int]
) -> None:
    above = {position + 1 + r for r in relative}
    at_or_below = {position - b for b in below if position - b >= 0}
    text, complete = encode(position, above | at_or_below)
    assert (text, complete) == encode(position, above)


@settings(max_examples=100, deadline=None)
@given(
    position=positions,
    relative=relative_sets,
    limit=st.integers(min_value=0, max_value=600),
)
def test_small_limits_are_respected(position: int, relative: set[int], limit: int) -> None:
    completed = {position + 1 + r for r in relative}
    text, complete = encode(position, completed, limit=limit)
    _check_shape(text, limit)
    decoded = decode(position, text)
    assert decoded <= completed
    if complete:
        assert decoded == completed


@settings(max_examples=100, deadline=None)
@given(position=positions, relative=relative_sets)
def test_run_length_size_is_the_run_length_payloads_size(position: int, relative: set[int]) -> None:
    # The blocking rule's bound (b) measures RLE(completed) without building it.
    offsets = relative_offsets(position, {position + 1 + r for r in relative})
    assert offsets == sorted(relative)
    payload = offset_metadata._run_lengths(offsets) if offsets else b""
    assert run_length_size(offsets) == len(payload)


def _native_varint_size(value: int) -> int:
    size: int = import_native("partition_state").varint_size(value)
    return size


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16_383, 16_384, 2**63 - 1])
@pytest.mark.parametrize(
    "size_of",
    [
        pytest.param(varint_size, id="pure"),
        pytest.param(_native_varint_size, marks=needs_native, id="native"),
    ],
)
def test_varint_size(value: int, size_of: Callable[[int], int]) -> None:
    # The native PartitionState weighs offset gaps with its own varint_size.
    out = bytearray()
    offset_metadata._varint(value, out)
    assert size_of(value) == len(out)


@pytest.mark.parametrize("limit", [8, 100, 1023, 1024, 4096, 65_536])
def test_any_set_within_the_always_fits_span_fits(limit: int) -> None:
    # max_payload is the longest payload whose base64 text (header byte included) fits.
    assert len(base64.b64encode(bytes(1 + max_payload(limit)))) <= limit
    assert len(base64.b64encode(bytes(2 + max_payload(limit)))) > limit
    span = always_fits_span(limit)
    rng = random.Random(limit)
    for completed in (
        {o for o in range(1, span) if rng.random() < 0.5},  # incompressible
        set(range(2, span, 2)),
        {span - 1},
    ):
        text, complete = encode(0, completed, limit)
        assert complete and decode(0, text) == completed


def test_empty_set_encodes_to_empty_string() -> None:
    assert encode(42, []) == ("", True)
    assert decode(42, "") == set()
    assert decode(42, None) == set()


def test_huge_sparse_set_does_not_fit_and_is_cut_to_a_prefix() -> None:
    # 20,000 random offsets far apart: incompressible, far more than 4096 bytes of varints.
    rng = random.Random(7)
    completed = set(rng.sample(range(1_000, 50_000_000), 20_000))
    text, complete = encode(999, completed)
    assert not complete
    _check_shape(text)
    decoded = decode(999, text)
    assert decoded
    assert decoded == {o for o in completed if o <= max(decoded)}


def test_dense_large_set_fits() -> None:
    # 100,000 completed offsets with a regular gap pattern compress very well.
    completed = {o for o in range(1, 200_001) if o % 2 == 0}
    text, complete = encode(0, completed)
    assert complete
    _check_shape(text)
    assert decode(0, text) == completed


def test_header_carries_the_version() -> None:
    text, _ = encode(10, {12, 13, 20})
    raw = base64.b64decode(text)
    assert raw[0] >> 4 == VERSION
    assert (raw[0] >> 1) & 0x7 in (BITSET, RUN_LENGTH)


def _raw(header: int, payload: bytes) -> str:
    return base64.b64encode(bytes([header]) + payload).decode()


@pytest.mark.parametrize(
    "metadata",
    [
        "not base64!!",
        "é",
        "AAAA",  # version 0
        _raw((VERSION + 1) << 4, b"\x01"),  # newer version
        _raw((VERSION << 4) | (5 << 1), b"\x01"),  # unknown encoding
        _raw((VERSION << 4) | (BITSET << 1) | 1, b"not zlib"),  # bad compression
        _raw((VERSION << 4) | (RUN_LENGTH << 1), b"\x80"),  # truncated varint
        _raw((VERSION << 4) | (RUN_LENGTH << 1), b"\xff" * 12),  # overlong varint
    ],
)
def test_malformed_metadata_raises(metadata: str) -> None:
    with pytest.raises(MetadataError):
        decode(0, metadata)


def test_metadata_error_is_a_value_error() -> None:
    assert issubclass(MetadataError, ValueError)


def test_compressed_bitset_round_trips() -> None:
    payload = bytes([0b1010_0001]) + bytes(100)
    text = _raw((VERSION << 4) | (BITSET << 1) | 1, zlib.compress(payload))
    assert decode(100, text) == {101, 106, 108}


def test_huge_span_encodes_without_allocating_the_span() -> None:
    """Two completed offsets 2**40 apart (a compacted topic has such gaps) must encode in
    bounded memory: run in a child limited to 1 GiB of address space so a bitset of the whole
    span (128 GiB) fails cleanly instead of exhausting the machine."""
    code = textwrap.dedent(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from pyrallel_consumer.control.offset_metadata import decode, encode
        completed = {1, 2, 3, 2**40, 2**40 + 5}
        text, complete = encode(0, completed)
        assert complete and len(text) <= 4096, (complete, len(text))
        assert decode(0, text) == completed
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
