"""Shared strategies, references and the `codec` fixture of the codec tests (test_codec*.py)."""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from pyrallel_consumer.codec import Result, available_codecs
from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record

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
# Outputs as the handler returns them (outputs=True): a result carries none or a list of them.
outputs = st.builds(
    Output,
    topic=texts.filter(bool),
    value=optional_bytes,
    key=optional_bytes,
    headers=headers,
    partition=st.none() | st.integers(0, 2**31 - 1),
)
result_batches = st.lists(
    st.builds(
        Result,
        wire_ints,
        outcomes,
        attempts,
        st.none() | long_texts,
        st.none() | st.lists(outputs, min_size=1, max_size=4),
    ),
    max_size=20,
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
    """What the msgpack package produces for a result batch: four fields, or five with the
    outputs."""
    batch = [
        list(r[:4])
        if len(r) == 4 or r[4] is None
        else [
            *r[:4],
            [
                [
                    o.topic,
                    o.value,
                    o.key,
                    None if o.headers is None else [list(h) for h in o.headers],
                    o.partition,
                ]
                for o in r[4]
            ],
        ]
        for r in results
    ]
    return msgpack.packb([1, batch], use_bin_type=True)


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
