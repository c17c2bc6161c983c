"""Writes records that failed every attempt to the dead-letter topic.

A record counts as done only once the broker acknowledged its dead letter, so a crash between
the failure and the acknowledgement redoes the record instead of losing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from pyrallel_consumer.record import Record

log = logging.getLogger(__name__)

# Consumer settings that a producer to the same cluster also needs (connection and security).
_SHARED_PREFIXES = ("bootstrap.servers", "security.", "sasl.", "ssl.", "client.id", "socket.")

HEADER_PREFIX = "pyrallel."


def producer_config(kafka_config: Mapping[str, Any]) -> dict[str, Any]:
    config = {k: v for k, v in kafka_config.items() if k.startswith(_SHARED_PREFIXES)}
    config.update({"enable.idempotence": True, "linger.ms": 5})
    return config


def dead_letter_headers(
    record: Record, error: str, attempts: int
) -> list[tuple[str, str | bytes | None]]:
    last_line = error.strip().splitlines()[-1] if error.strip() else ""
    return [
        *(record.headers or []),
        (HEADER_PREFIX + "error", last_line.encode()),
        (HEADER_PREFIX + "traceback", error.encode()),
        (HEADER_PREFIX + "attempts", str(attempts).encode()),
        (HEADER_PREFIX + "source.topic", record.topic.encode()),
        (HEADER_PREFIX + "source.partition", str(record.partition).encode()),
        (HEADER_PREFIX + "source.offset", str(record.offset).encode()),
    ]


class DeadLetterPublisher:
    """Owned by the control thread: `publish` and `poll` are called from the poll loop only."""

    def __init__(self, topic: str, kafka_config: Mapping[str, Any]) -> None:
        self.topic = topic
        self._producer = Producer(producer_config(kafka_config))
        self.pending = 0

    def publish(
        self,
        record: Record,
        error: str,
        attempts: int,
        on_delivered: Callable[[KafkaError | None], None],
    ) -> None:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self.pending -= 1
            on_delivered(err)

        self.pending += 1
        self._producer.produce(
            self.topic,
            key=record.key,
            value=record.value,
            headers=dead_letter_headers(record, error, attempts),
            on_delivery=delivered,
        )
        self._producer.poll(0)

    def poll(self) -> None:
        if self.pending:
            self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        if not self.pending:
            return 0
        remaining: int = self._producer.flush(timeout)
        return remaining
