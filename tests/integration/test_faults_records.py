"""End to end, on every engine: every Record field arrives intact, and a dead letter that the
broker refuses stops the run with DeadLetterError without committing the record (test gaps of
issue 10)."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    TRACE_ENV,
    committed_offset,
    group_name,
    produce_each,
    read_trace,
    record_fields,
    trace,
)

from pyrallel_consumer import DeadLetterError, ParallelConsumer, Record

pytestmark = pytest.mark.integration

BASE_TIMESTAMP_MS = 1_600_000_000_000
MESSAGES: list[dict[str, Any]] = [
    {"key": b"k\x00\xff", "value": b"\x00\x01binary\xfe", "headers": [("a", b"1"), ("b", b"\x00")]},
    {"key": None, "value": b"no key", "headers": [("dup", b"x"), ("dup", b"y")]},
    {"key": b"tombstone", "value": None, "headers": [("empty", b""), ("none", None)]},
    {"key": b"", "value": b"", "headers": None},
    {"key": b"utf8", "value": "h\u00e9llo \u2603".encode(), "headers": [("h\u00e9", b"v")]},
    {"key": b"big", "value": bytes(range(256)) * 40, "headers": [("n", b"2")]},
]
POISON_OFFSET = 5


def trace_fields(record: Record) -> None:
    trace("fields", repr(record_fields(record)))


async def async_trace_fields(record: Record) -> None:
    trace_fields(record)


def fail_one(record: Record) -> None:
    if record.offset == POISON_OFFSET:
        raise ValueError("poison")


CASES = [
    ("baseline", trace_fields),
    ("async", trace_fields),
    ("async", async_trace_fields),
    ("process", trace_fields),
    ("process", async_trace_fields),
]


@pytest.mark.parametrize(("engine", "handler"), CASES, ids=[f"{e}-{h.__name__}" for e, h in CASES])
def test_every_record_field_arrives_intact(
    engine: str,
    handler: Callable[[Record], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    topic = new_topic(kafka_broker, 1)
    messages = [
        {**m, "partition": 0, "timestamp": BASE_TIMESTAMP_MS + i} for i, m in enumerate(MESSAGES)
    ]
    delivered = produce_each(kafka_broker, topic, messages)
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("fields")),
        topics=[topic],
        handler=handler,
        engine=engine,
        **({"workers": 1} if engine == "process" else {}),
    )
    assert consumer.run(max_records=len(messages), timeout=120) == len(messages)

    seen = {}
    for line in read_trace(tmp_path, "fields"):
        fields = ast.literal_eval(line)
        seen[fields[2]] = fields
    for message, sent in zip(delivered, messages, strict=True):
        offset = message.offset()
        got = seen[offset]
        headers = [(name, value) for name, value in sent["headers"]] if sent["headers"] else None
        assert got == (topic, 0, offset, sent["key"], sent["value"], headers, sent["timestamp"])


def test_a_refused_dead_letter_raises_and_is_not_committed(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(kafka_broker, 1)
    # The broker refuses the dead letter: larger than the dead-letter topic allows.
    dlq = new_topic(kafka_broker, 1, prefix="dlq", config={"max.message.bytes": "1024"})
    produce_each(
        kafka_broker,
        topic,
        ({"key": b"k", "value": b"x" * 4096, "partition": 0} for _ in range(10)),
    )
    group = group_name("dlq-refused")
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=fail_one,
        engine="async",
        retries=0,
        dlq_topic=dlq,
        commit_interval_s=0.1,
    )
    with pytest.raises(DeadLetterError) as raised:
        consumer.run(timeout=120)
    assert dlq in str(raised.value)
    assert f"offset={POISON_OFFSET}" in str(raised.value)
    assert committed_offset(kafka_broker, group, topic) <= POISON_OFFSET
    assert consumer.stats()["dead_lettered"] == 0
