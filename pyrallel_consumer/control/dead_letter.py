"""Writes records that failed every attempt to the dead-letter topic.

A record counts as completed only once the broker acknowledged its dead letter, so a crash
between the failure and the acknowledgement redoes the record instead of losing it.

Ownership: the control thread calls `publish`, `poll` and `flush`; delivery callbacks run
inside `poll`/`flush`, so on that thread too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message, Producer

from pyrallel_consumer.control.kafka_log import with_logger
from pyrallel_consumer.kafka_settings import producer_settings
from pyrallel_consumer.record import Record

log = logging.getLogger(__name__)

HEADER_PREFIX = "pyrallel."

# While no dead letter is pending, the producer is still polled this often: its librdkafka log
# lines (routed to logging, control/kafka_log.py) queue up until a poll serves them.
IDLE_POLL_INTERVAL_S = 1.0

# Called once per dead letter with None when the broker acknowledged it, else the error text.
OnDelivered = Callable[[str | None], None]


class DeadLetterSink(Protocol):
    """Where failed records go (`DeadLetterPublisher` in production, a fake in unit tests)."""

    def publish(self, record: Record, error: str, attempts: int, on_delivered: OnDelivered) -> None:
        """Queue a dead letter; `on_delivered` runs later, inside `poll` or `flush`."""

    def poll(self) -> None:
        """Serve delivery callbacks that are due; never blocks."""

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for deliveries; returns how many are outstanding."""


def producer_config(
    kafka_config: Mapping[str, Any], explicit: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The dead-letter producer's settings: `explicit` (the dlq_producer_config option) when
    given, else every setting of the consumer's `kafka_config` that a producer takes (bootstrap
    servers, security.protocol, sasl.*, ssl.*, callables such as oauth_cb, ...). Idempotence is
    on unless the settings say otherwise."""
    config = dict(explicit) if explicit is not None else producer_settings(kafka_config)
    config.setdefault("enable.idempotence", True)
    config.setdefault("linger.ms", 5)
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
    """A `DeadLetterSink` producing to `topic` with an idempotent producer."""

    def __init__(
        self,
        topic: str,
        kafka_config: Mapping[str, Any],
        explicit: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._producer = Producer(with_logger(producer_config(kafka_config, explicit)))
        self.pending = 0
        self._next_idle_poll = 0.0

    def publish(
        self,
        record: Record,
        error: str,
        attempts: int,
        on_delivered: OnDelivered,
    ) -> None:
        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self.pending -= 1
            on_delivered(None if err is None else err.str())

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
            return
        now = time.monotonic()
        if now >= self._next_idle_poll:
            self._next_idle_poll = now + IDLE_POLL_INTERVAL_S
            self._producer.poll(0)

    def flush(self, timeout: float) -> int:
        """Wait for outstanding deliveries; returns how many are still outstanding."""
        if not self.pending:
            return 0
        remaining: int = self._producer.flush(timeout)
        return remaining
