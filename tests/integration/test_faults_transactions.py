"""Fault 7 of issue 10: on a read_committed topic the commit reaches the consumer's position.

A transactional producer writes one committed and one aborted transaction of 3 records each:
offsets 0-2 visible, 3 a commit marker, 4-6 aborted, 7 an abort marker; the end is 8. Once
every delivered record completed, the commit must reach 8 (what a plain consumer's position()
says), so lag reaches 0 in stats() and in external lag monitors.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from faults_support import Completions, RunThread, committed_offset, group_name, wait_for

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.topic_partition import TopicPartition as Partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

END = 8  # 3 committed + marker + 3 aborted + marker
COMMIT_DEADLINE_S = 20.0  # commit_interval_s is 0.2: the commit follows within a second


def produce_transactions(broker: Any, topic: str) -> None:
    producer = Producer(
        broker.client_config(**{"transactional.id": f"faults-{uuid.uuid4().hex[:8]}"})
    )
    producer.init_transactions(30)
    for commit in (True, False):
        producer.begin_transaction()
        for i in range(3):
            producer.produce(topic, key=f"k{i}".encode(), value=b"x", partition=0)
        producer.flush(30)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


def plain_position(broker: Any, topic: str) -> int:
    """Where a plain read_committed consumer stands once it read everything visible."""
    consumer = Consumer(
        broker.consumer_config(group_name("plain"), **{"isolation.level": "read_committed"})
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen, position = 0, -1

    def caught_up() -> bool:
        nonlocal seen, position
        seen += sum(1 for m in consumer.consume(10, 0.2) if m.error() is None)
        (tp,) = consumer.position([TopicPartition(topic, 0)])
        position = tp.offset
        return seen >= 3 and position == END

    try:
        wait_for(caught_up, "a plain consumer to read the topic", state=lambda: (seen, position))
    finally:
        consumer.close()
    return position


def noop(record: Record) -> None:
    """Nothing to do: the test is about offsets."""


def test_read_committed_commits_up_to_the_position(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce_transactions(kafka_broker, topic)
    assert plain_position(kafka_broker, topic) == END
    group = group_name("read-committed")
    completions = Completions()
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group, **{"isolation.level": "read_committed"}),
        topics=[topic],
        handler=noop,
        engine="async",
        commit_interval_s=0.2,
        on_complete=completions,
    )
    run = RunThread(consumer, timeout=120)
    try:
        wait_for(
            lambda: completions.offsets() == {0, 1, 2}, "the 3 visible records", alive=run.alive
        )
        wait_for(
            lambda: committed_offset(kafka_broker, group, topic) == END,
            f"the commit to reach {END}",
            timeout=COMMIT_DEADLINE_S,
            alive=run.alive,
            state=lambda: f"committed {committed_offset(kafka_broker, group, topic)}",
        )
        lag = consumer.stats()["partitions"][Partition(topic, 0)]["lag"]
        assert lag in (0, None), f"lag {lag} with everything handled"
    finally:
        run.stop_and_join()
    assert run.error is None, run.error
    assert committed_offset(kafka_broker, group, topic) == END
