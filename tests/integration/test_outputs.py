"""Consume, transform, produce (outputs=True, at least once) on Apache Kafka.

Every engine x every ordering: each of 20,000 records returns one output, and the output topic
holds every one of them, a key's outputs in input order; the commit reaches the end only
because every output was acknowledged. An output over the output topic's max.message.bytes is
a failed attempt: redone, then the failure policy, and nothing is committed past its record.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import pytest
from outputs_support import (
    OUT_TOPIC_ENV,
    duplicates,
    order_violations,
    output_of,
    sources,
    transform,
    transform_async,
    transform_batch,
)
from support import committed, end_offsets, group_name, read_topic

from pyrallel_consumer import Output, ParallelConsumer, ProcessingError, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 8
KEYS = 100
RUN_TIMEOUT_S = 300.0


def _consumer(broker: Any, topic: str, group: str, **options: Any) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        outputs=True,
        commit_interval_s=0.2,
        **options,
    )


@pytest.mark.parametrize("ordering", ["key", "partition", "unordered"])
@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_every_output_written_in_key_order(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    ordering: str,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    out_topic = new_topic(kafka_broker, PARTITIONS, prefix="outputs")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)  # the process engine's workers inherit it
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("outputs")
    handler = transform_async if engine == "async" else transform
    options: dict[str, Any] = {"workers": 2} if engine == "process" else {}
    consumer = _consumer(
        kafka_broker, topic, group, handler=handler, engine=engine, ordering=ordering, **options
    )
    assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == RECORDS

    stats = consumer.stats()
    assert stats["outputs_acknowledged"] == RECORDS and stats["outputs_refused"] == 0
    assert stats["outputs_produced"] == RECORDS and stats["outputs_pending"] == 0
    read = sources(read_topic(kafka_broker, out_topic, RECORDS))
    missing = {(r.partition, r.offset) for r in produced} - {(p, o) for p, o, *_ in read}
    assert not missing, f"{len(missing)} outputs missing, e.g. {sorted(missing)[:5]}"
    assert duplicates(read) == 0  # no fault, no redo
    for in_partition, in_offset, key, *_ in read:
        assert key == produced_key(produced, in_partition, in_offset)
    if ordering != "unordered":
        assert order_violations(read) == []
    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)


def produced_key(produced: list[Any], partition: int, offset: int) -> bytes | None:
    if not hasattr(produced_key, "index"):
        produced_key.index = {}  # type: ignore[attr-defined]
    index = produced_key.index  # type: ignore[attr-defined]
    if id(produced) not in index:
        index.clear()
        index[id(produced)] = {(r.partition, r.offset): r.key for r in produced}
    key: bytes | None = index[id(produced)][(partition, offset)]
    return key


@pytest.mark.parametrize("engine", ["async", "process"])
def test_batch_handlers_outputs(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    topic = new_topic(kafka_broker, 4)
    out_topic = new_topic(kafka_broker, 4, prefix="outputs")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, 2_000, keys=KEYS)
    group = group_name("outputs-batch")
    options: dict[str, Any] = {"workers": 2} if engine == "process" else {}
    consumer = _consumer(
        kafka_broker, topic, group, handler=transform_batch, engine=engine, batch_size=50, **options
    )
    assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == 2_000
    read = sources(read_topic(kafka_broker, out_topic, 2_000))
    assert {(p, o) for p, o, *_ in read} == {(r.partition, r.offset) for r in produced}
    assert order_violations(read) == []
    final = committed(kafka_broker, group, topic, 4)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)


# ---- an output the broker refuses --------------------------------------------------------------

POISON_OFFSET = 20
OUT_MAX_BYTES = 10_000  # the output topic's max.message.bytes
_calls_lock = threading.Lock()
_poison_calls = 0


def too_large_at_poison(record: Record) -> Output:
    """One output per record; the poison record's is over the output topic's limit."""
    global _poison_calls
    output = output_of(record)
    if record.offset != POISON_OFFSET:
        return output
    with _calls_lock:
        _poison_calls += 1
    return Output(output.topic, b"x" * (OUT_MAX_BYTES * 2), output.key, output.headers)


@pytest.mark.parametrize("on_failure", ["stop", "skip"])
def test_an_output_over_the_topic_limit_is_a_failed_attempt(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    on_failure: str,
) -> None:
    global _poison_calls
    _poison_calls = 0
    topic = new_topic(kafka_broker, 1)
    out_topic = new_topic(
        kafka_broker, 1, prefix="outputs", config={"max.message.bytes": str(OUT_MAX_BYTES)}
    )
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produce(kafka_broker, topic, 100, keys=4)
    group = group_name("outputs-refused")
    consumer = _consumer(
        kafka_broker,
        topic,
        group,
        handler=too_large_at_poison,
        engine="baseline",
        retries=2,
        retry_backoff_s=0.01,
        on_failure=on_failure,
    )
    if on_failure == "stop":
        with pytest.raises(ProcessingError) as raised:
            consumer.run(until_end=True, timeout=RUN_TIMEOUT_S)
        error = raised.value
        assert (error.topic, error.partition, error.offset) == (topic, 0, POISON_OFFSET)
        text = str(error)
        assert "MSG_SIZE_TOO_LARGE" in text and "max.message.bytes" in text and out_topic in text
        assert "output 1 of 1" in text
        # Nothing committed past the record whose output was refused.
        assert committed(kafka_broker, group, topic, 1)[0].offset == POISON_OFFSET
    else:
        assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == 100
        assert committed(kafka_broker, group, topic, 1)[0].offset == 100
        read = sources(read_topic(kafka_broker, out_topic, 99))
        assert {o for _, o, *_ in read} == set(range(100)) - {POISON_OFFSET}
    # The first attempt and one redo per retry, each refused.
    assert _poison_calls == 3
    stats = consumer.stats()
    assert stats["outputs_refused"] >= 3
    assert stats["failed"] == 1
    assert os.environ[OUT_TOPIC_ENV] == out_topic
