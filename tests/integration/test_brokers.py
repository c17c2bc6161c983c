"""Smoke tests of the real brokers with confluent-kafka: the ground the library stands on.

They also pin the tansu limits documented in bench/broker/__init__.py, so a tansu upgrade that
fixes (or changes) one of them shows up as a failing test here rather than as a surprise
elsewhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from support import consume_all

pytestmark = pytest.mark.integration


def group_id() -> str:
    return f"group-{uuid.uuid4().hex[:8]}"


def test_new_topic_has_requested_partitions(broker: Any, new_topic: Callable[..., str]) -> None:
    from confluent_kafka.admin import AdminClient

    topic = new_topic(broker, partitions=8)
    metadata = AdminClient(broker.client_config()).list_topics(topic=topic, timeout=10)
    assert sorted(metadata.topics[topic].partitions) == list(range(8))


def test_produce_then_consume_in_a_group(
    broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(broker, partitions=4)
    produced = produce(broker, topic, 2000, keys=50)

    consumer = Consumer(broker.consumer_config(group_id()))
    consumer.subscribe([topic])
    try:
        records = consume_all(consumer, len(produced))
    finally:
        consumer.close()

    got = {(m.partition(), m.offset()): (m.key(), m.value()) for m in records}
    want = {(r.partition, r.offset): (r.key, r.value) for r in produced}
    assert got == want
    # Records with one key land in one partition, in production order: the basis of key order.
    partitions_of_key: dict[bytes, set[int]] = {}
    for r in produced:
        partitions_of_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in partitions_of_key.values())
    assert len({r.partition for r in produced}) == 4


def test_commit_then_read_back_committed_offset(
    broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(broker, partitions=1)
    produce(broker, topic, 10)
    group = group_id()
    consumer = Consumer(broker.consumer_config(group))
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        consume_all(consumer, 10)
        consumer.commit(offsets=[TopicPartition(topic, 0, 7)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == 7

    # A new member of the group resumes from the committed offset.
    resumed = Consumer(broker.consumer_config(group))
    resumed.assign([TopicPartition(topic, 0)])
    try:
        records = consume_all(resumed, 3)
    finally:
        resumed.close()
    assert [m.offset() for m in records] == [7, 8, 9]


def test_kafka_keeps_commit_metadata(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(kafka_broker, partitions=2)
    produce(kafka_broker, topic, 20)
    group = group_id()
    # Near the broker's 4096-byte offset.metadata.max.bytes, as the offset codec will use it.
    metadata = "P1:" + "x" * 4000
    consumer = Consumer(kafka_broker.consumer_config(group))
    try:
        consumer.commit(
            offsets=[
                TopicPartition(topic, 0, 3, metadata=metadata),
                TopicPartition(topic, 1, 5, metadata="short"),
            ],
            asynchronous=False,
        )
        committed = consumer.committed(
            [TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10
        )
    finally:
        consumer.close()
    assert [(tp.partition, tp.offset, tp.metadata) for tp in committed] == [
        (0, 3, metadata),
        (1, 5, "short"),
    ]


def test_kafka_watermarks_are_exact(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(kafka_broker, partitions=1)
    produce(kafka_broker, topic, 25)
    consumer = Consumer(kafka_broker.consumer_config(group_id()))
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert (low, high) == (0, 25)


def test_tansu_drops_commit_metadata_known_limit(
    tansu_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(tansu_broker, partitions=1)
    produce(tansu_broker, topic, 5)
    consumer = Consumer(tansu_broker.consumer_config(group_id()))
    try:
        consumer.commit(
            offsets=[TopicPartition(topic, 0, 4, metadata="completed:1,2")], asynchronous=False
        )
        committed = consumer.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        consumer.close()
    assert committed[0].offset == 4
    assert committed[0].metadata in (None, ""), "tansu now keeps commit metadata: update docs"


def test_tansu_high_watermark_is_wrong_known_limit(
    tansu_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(tansu_broker, partitions=1)
    produce(tansu_broker, topic, 25)
    consumer = Consumer(tansu_broker.consumer_config(group_id()))
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    # Apache Kafka answers 25 (test_kafka_watermarks_are_exact); tansu 0.6 answers 1.
    assert high != 25, "tansu now answers ListOffsets correctly: update docs"
