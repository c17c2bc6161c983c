"""Tracing on Apache Kafka with the process engine: spans are made in the worker processes,
exported by the TracerProvider that `worker_init` installs there, one per handler call, current
inside the handler, parented by the producer's context from each record's `traceparent` header
(batch mode: one span per batch call, linked to each record's context). The in-process engines
are covered in tests/unit/test_tracing_engines.py."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import group_name, produce_each
from tracing_workers import (
    FAILING_VALUE,
    OUT_ENV,
    handle,
    handle_batch,
    install_tracing,
    read_lines,
)

from pyrallel_consumer import ParallelConsumer

pytestmark = pytest.mark.integration

RECORDS = 30
RUN_TIMEOUT_S = 120.0


def producer_ids(n: int) -> list[int]:
    """The (trace_id, span_id) of the producer span of record number `n`."""
    return [0xFEED0000 + n, 0xBEEF00 + n]


def produce_traced(kafka_broker: Any, topic: str) -> None:
    """RECORDS records, value str(n), each carrying its producer's context."""
    produce_each(
        kafka_broker,
        topic,
        (
            {
                "key": b"key-%d" % (n % 5),
                "value": str(n).encode(),
                "headers": [("traceparent", traceparent(producer_ids(n)))],
            }
            for n in range(RECORDS)
        ),
    )


def traceparent(ids: list[int]) -> bytes:
    return f"00-{ids[0]:032x}-{ids[1]:016x}-01".encode()


def run_process_consumer(
    kafka_broker: Any,
    topic: str,
    out: Path,
    handler: Callable[[Any], Any],
    monkeypatch: pytest.MonkeyPatch,
    **options: Any,
) -> int:
    monkeypatch.setenv(OUT_ENV, str(out))  # the workers inherit it
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("tracing")),
        topics=[topic],
        handler=handler,
        engine="process",
        workers=2,
        tracing=True,
        worker_init=functools.partial(install_tracing, str(out)),
        retries=1,
        retry_backoff_s=0.0,
        on_failure="skip",
        **options,
    )
    return consumer.run(max_records=RECORDS, timeout=RUN_TIMEOUT_S)


def test_process_workers_export_a_span_per_record_call(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    produce_traced(kafka_broker, topic)
    assert run_process_consumer(kafka_broker, topic, tmp_path, handle, monkeypatch) == RECORDS
    spans = read_lines(tmp_path, "spans")
    calls = read_lines(tmp_path, "calls")
    assert len(spans) == len(calls) == RECORDS + 1  # the failing record: two attempts
    by_ids = {tuple(span["ids"]): span for span in spans}
    for call in calls:
        (value,) = call["values"]
        span = by_ids[tuple(call["span"])]  # the handler ran inside this span
        assert span["parent"] == producer_ids(int(value))
        assert span["kind"] == "CONSUMER" and span["name"] == f"process {topic}"
        attributes = span["attributes"]
        assert attributes["messaging.system"] == "kafka"
        assert attributes["messaging.destination.name"] == topic
        assert attributes["messaging.kafka.message.key"] == f"key-{int(value) % 5}"
        assert "messaging.kafka.offset" in attributes
    failing = [
        span for span in spans if span["parent"] == producer_ids(int(FAILING_VALUE.decode()))
    ]
    assert [s["attributes"]["pyrallel.attempt"] for s in failing] == [1, 2]
    assert [s["status"] for s in failing] == ["ERROR", "ERROR"]
    assert failing[1]["events"] == ["retry", "exception"]


def test_process_workers_export_a_span_per_batch_call(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    produce_traced(kafka_broker, topic)
    done = run_process_consumer(
        kafka_broker, topic, tmp_path, handle_batch, monkeypatch, batch_size=4
    )
    assert done == RECORDS
    spans = read_lines(tmp_path, "spans")
    calls = read_lines(tmp_path, "calls")
    assert len(spans) == len(calls)
    by_ids = {tuple(span["ids"]): span for span in spans}
    linked = []
    for call in calls:
        span = by_ids[tuple(call["span"])]
        assert span["parent"] is None
        assert span["links"] == [producer_ids(int(value)) for value in call["values"]]
        assert span["attributes"]["messaging.batch.message_count"] == len(call["values"])
        linked += span["links"]
    assert sorted(linked) == sorted(producer_ids(n) for n in range(RECORDS))
