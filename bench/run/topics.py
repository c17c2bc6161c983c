"""Kafka-side preparation of a run: reset its topic (producing is bench/run/produce.py)."""

from __future__ import annotations

import time
from collections.abc import Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from bench.run.cluster import BenchSetupError, client_config


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
    config: Mapping[str, str] | None = None,
) -> None:
    """Delete `topic` (when asked) and create it with `partitions` partitions and the topic
    settings `config` (e.g. message.timestamp.type), when it creates it.

    Deletion is asynchronous on Apache Kafka: creating the same name right after can fail with
    TOPIC_ALREADY_EXISTS for a moment, so creation is retried until the deadline.
    """
    admin = AdminClient(client_config(bootstrap_servers))
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
        future = admin.create_topics(
            [NewTopic(topic, partitions, 1, config=dict(config or {}))],
            operation_timeout=timeout_s,
        )[topic]
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
