"""Batch jobs that end: run(until_end=True) stops on its own once every assigned partition
completed up to the end it had when assigned, with everything committed; on every engine.
run(idle_timeout=...) stops once nothing arrived for that long."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.engines.registry import ENGINE_NAMES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 600
PARTITIONS = 4
RUN_TIMEOUT_S = 120.0


def handle(record: Record) -> None:
    """Module level: the process engine pickles it."""


def committed_and_ends(broker: Any, group: str, topic: str) -> tuple[list[int], list[int]]:
    checker = Consumer(broker.consumer_config(group))
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        committed = [tp.offset for tp in checker.committed(partitions, timeout=10)]
        ends = [checker.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions]
    finally:
        checker.close()
    return committed, ends


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_until_end_ends_on_its_own_and_commits_to_the_end(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., Any],
    engine: str,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    # Every partition but the last gets records; an empty partition is at its end at once.
    for partition in range(PARTITIONS - 1):
        produce(kafka_broker, topic, RECORDS // (PARTITIONS - 1), partition=partition)
    group = f"batch-{engine}-{uuid.uuid4().hex[:6]}"
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handle,
        engine=engine,
        **({"workers": 2} if engine == "process" else {}),
    )
    completed = consumer.run(until_end=True, timeout=RUN_TIMEOUT_S)
    assert completed == RECORDS
    committed, ends = committed_and_ends(kafka_broker, group, topic)
    assert ends == [RECORDS // (PARTITIONS - 1)] * (PARTITIONS - 1) + [0]
    assert committed[:-1] == ends[:-1]


def test_idle_timeout_ends_once_nothing_arrives(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produce(kafka_broker, topic, RECORDS)
    group = f"idle-{uuid.uuid4().hex[:6]}"
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group), topics=[topic], handler=handle, engine="async"
    )
    assert consumer.run(idle_timeout=3.0, timeout=RUN_TIMEOUT_S) == RECORDS
    committed, ends = committed_and_ends(kafka_broker, group, topic)
    assert committed == ends
