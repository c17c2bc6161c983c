"""Kafka-side preparation of a run: reach the broker, reset the topic, produce the records.

The bench counts what it produced instead of asking the broker for watermarks: tansu answers
ListOffsets wrongly, and counting is exact on every broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from bench.workloads.payload import make_key, make_value


class BenchSetupError(RuntimeError):
    """The broker or topic could not be prepared; the message names the address or topic."""


def check_reachable(bootstrap_servers: str, timeout_s: float) -> None:
    """Fail within `timeout_s` with the address in the message when no broker answers."""
    admin = AdminClient(
        {
            "bootstrap.servers": bootstrap_servers,
            "socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000)),
        }
    )
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BenchSetupError(
            f"cannot reach a Kafka broker at {bootstrap_servers} within {timeout_s:g} s "
            f"({exc.args[0] if exc.args else exc})"
        ) from None


def _topic_exists(admin: AdminClient, topic: str, timeout_s: float) -> bool:
    metadata = admin.list_topics(timeout=timeout_s)
    return topic in metadata.topics and metadata.topics[topic].error is None


def reset_topic(
    bootstrap_servers: str,
    topic: str,
    partitions: int,
    timeout_s: float,
    *,
    delete_first: bool = True,
) -> None:
    """Delete `topic` (when asked) and create it with `partitions` partitions.

    Deletion is asynchronous on Apache Kafka: creating the same name right after can fail with
    TOPIC_ALREADY_EXISTS for a moment, so creation is retried until the deadline.
    """
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    deadline = time.monotonic() + timeout_s
    if delete_first:
        for future in admin.delete_topics([topic], operation_timeout=timeout_s).values():
            try:
                future.result(timeout=timeout_s)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise BenchSetupError(f"cannot delete topic {topic}: {exc}") from None
    elif _topic_exists(admin, topic, timeout_s):
        return
    while True:
        future = admin.create_topics([NewTopic(topic, partitions, 1)], operation_timeout=timeout_s)[
            topic
        ]
        try:
            future.result(timeout=timeout_s)
        except KafkaException as exc:
            code = exc.args[0].code()
            if code == KafkaError.TOPIC_ALREADY_EXISTS and not delete_first:
                return
            if code == KafkaError.TOPIC_ALREADY_EXISTS and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            raise BenchSetupError(
                f"cannot create topic {topic} with {partitions} partitions: {exc}"
            ) from None
        break
    _wait_for_leaders(admin, topic, partitions, deadline)


def _wait_for_leaders(admin: AdminClient, topic: str, partitions: int, deadline: float) -> None:
    """Producing right after creation can race the partition leaders' election."""
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic, timeout=5).topics.get(topic)
        if (
            metadata is not None
            and metadata.error is None
            and len(metadata.partitions) == partitions
            and all(p.leader >= 0 for p in metadata.partitions.values())
        ):
            return
        time.sleep(0.1)
    raise BenchSetupError(f"topic {topic} has no leader for every partition in time")


def produce_records(
    bootstrap_servers: str,
    topic: str,
    num_messages: int,
    num_keys: int,
    timeout_s: float,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Produce `num_messages` records over `num_keys` keys; returns how many were delivered."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "acks": "all",
            "enable.idempotence": False,
            "compression.type": "none",
        }
    )
    failures: list[str] = []
    delivered = 0

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        nonlocal delivered
        if err is not None:
            failures.append(str(err))
        else:
            delivered += 1

    for seq in range(num_messages):
        while True:
            try:
                producer.produce(
                    topic,
                    key=make_key(seq, num_keys),
                    value=make_value(seq),
                    on_delivery=on_delivery,
                )
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        if seq % 1000 == 0:
            producer.poll(0)
            if on_progress:
                on_progress(seq)
    remaining = producer.flush(timeout_s)
    if failures or remaining:
        raise BenchSetupError(
            f"producing to {topic} failed: {delivered} of {num_messages} delivered, "
            f"{remaining} still queued; first error: {failures[0] if failures else 'timeout'}"
        )
    return delivered
