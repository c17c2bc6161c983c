"""End to end, on every engine: every Record field arrives intact (test gaps of issue 10); a
dead letter that the producer or the broker refuses stops the run at once with DeadLetterError
naming the record, without committing it and with nothing left held (issue 17); a long
traceback is cut so that it cannot make a small record's dead letter too large."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from faults_support import (
    TRACE_ENV,
    committed_offset,
    group_name,
    produce_each,
    read_topic,
    read_trace,
    record_fields,
    trace,
)

from pyrallel_consumer import DeadLetterError, ParallelConsumer, Record
from pyrallel_consumer.control.dead_letter import HEADER_PREFIX, TRACEBACK_MAX_BYTES

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


BIG_OFFSET = 3
BIG_TOPIC_CONFIG = {"max.message.bytes": str(2 * 1024 * 1024)}


def fail_big(record: Record) -> None:
    if record.offset == BIG_OFFSET:
        raise ValueError("cannot handle a big record")


def fail_with_a_huge_message(record: Record) -> None:
    if record.offset == BIG_OFFSET:
        raise ValueError("too long to read: " + "x" * 2_000_000)


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


def run_to_dead_letter_error(
    broker: Any, group: str, topic: str, dlq: str, handler: Callable[[Record], None]
) -> tuple[ParallelConsumer, DeadLetterError]:
    """Run an async consumer of `topic` (no retries, failures dead-lettered to `dlq`,
    commits every 0.1 s) until run() raises DeadLetterError, within 120 s; the consumer (for
    its stats) and the error. Fails if run() ends any other way."""
    consumer = ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine="async",
        retries=0,
        dlq_topic=dlq,
        commit_interval_s=0.1,
    )
    with pytest.raises(DeadLetterError) as raised:
        consumer.run(timeout=120)
    return consumer, raised.value


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
    consumer, error = run_to_dead_letter_error(kafka_broker, group, topic, dlq, fail_one)
    assert (error.topic, error.partition, error.offset, error.dlq_topic) == (
        topic,
        0,
        POISON_OFFSET,
        dlq,
    )
    assert f"{topic}[0]@{POISON_OFFSET}" in str(error)
    assert "max.message.bytes" in str(error)  # the fix: the topic's limit
    assert error.code == 10  # MSG_SIZE_TOO_LARGE, from the broker
    assert committed_offset(kafka_broker, group, topic) <= POISON_OFFSET
    stats = consumer.stats()
    assert (stats["dead_lettered"], stats["in_flight"], stats["dead_lettering"]) == (0, 0, 0)


def test_a_dead_letter_larger_than_the_producer_accepts_raises_at_once(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    """Issue 17, fault 4: the record fits its topic (2 MB) but its dead letter is over the
    dead-letter producer's message.max.bytes (1 MB by default), so produce() refuses it."""
    topic = new_topic(kafka_broker, 1, config=BIG_TOPIC_CONFIG)
    dlq = new_topic(kafka_broker, 1, prefix="dlq")
    produce_big(kafka_broker, topic)
    group = group_name("dlq-too-large")
    consumer, error = run_to_dead_letter_error(kafka_broker, group, topic, dlq, fail_big)
    assert (error.topic, error.partition, error.offset) == (topic, 0, BIG_OFFSET)
    assert f"{topic}[0]@{BIG_OFFSET}" in str(error)
    assert "MSG_SIZE_TOO_LARGE" in str(error) and "message.max.bytes" in str(error)
    assert committed_offset(kafka_broker, group, topic) <= BIG_OFFSET
    # Nothing was left held: the revoke and the shutdown drain did not wait for a dead letter
    # that could never be acknowledged (before, dead_lettering stayed 1 and both waited).
    stats = consumer.stats()
    assert (stats["in_flight"], stats["dead_lettering"], stats["dead_lettered"]) == (0, 0, 0)
    assert stats["failed"] == 1


def test_a_huge_traceback_is_cut_and_the_record_still_dead_lettered(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(kafka_broker, 1)
    dlq = new_topic(kafka_broker, 1, prefix="dlq")
    produce_each(
        kafka_broker, topic, ({"key": b"k", "value": b"v%d" % i, "partition": 0} for i in range(10))
    )
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("dlq-cut")),
        topics=[topic],
        handler=fail_with_a_huge_message,
        engine="async",
        retries=0,
        dlq_topic=dlq,
    )
    assert consumer.run(max_records=10, timeout=60) == 10
    assert consumer.stats()["dead_lettered"] == 1
    (letter,) = read_topic(kafka_broker, dlq, 1)
    assert letter.value() == b"v%d" % BIG_OFFSET
    headers = dict(letter.headers() or [])
    traceback = headers[HEADER_PREFIX + "traceback"]
    assert traceback is not None and len(traceback) <= TRACEBACK_MAX_BYTES
    assert (
        b"bytes cut" in traceback
        and b"Traceback" in traceback
        and traceback.rstrip().endswith(b"x")
    )


def produce_big(broker: Any, topic: str) -> None:
    """10 records to partition 0; the one at BIG_OFFSET carries a 1.5 MB value (the producer's
    message.max.bytes raised to let it through)."""
    producer = Producer(broker.client_config(**{"message.max.bytes": 4 * 1024 * 1024}))
    errors: list[Any] = []
    for offset in range(10):
        value = b"b" * 1_500_000 if offset == BIG_OFFSET else b"v%d" % offset
        producer.produce(
            topic,
            key=b"k",
            value=value,
            partition=0,
            on_delivery=lambda err, _msg: errors.append(err) if err else None,
        )
    assert producer.flush(60) == 0 and not errors, errors
