"""Writes records that failed every attempt to the dead-letter topic.

A record counts as completed only once the broker acknowledged its dead letter, so a crash
between the failure and the acknowledgement redoes the record instead of losing it. Every way
a dead letter can fail ends as `DeadLetterError` naming the record and the cause: raised by
`publish` when the producer refuses it at once (too large, local queue full, the producer
cannot be built), or passed to its `on_delivered` when the broker does not acknowledge it.

The dead letter is the record's key, value and headers plus `pyrallel.*` headers (the error's
last line, the traceback, attempts, source topic, partition and offset). The traceback and the
error line are cut to a bounded size, so a long traceback (a RecursionError, an exception
message holding a whole payload) cannot make a small record's dead letter too large.

The producer is built at the first `publish`, not in the constructor: a run whose records never
fail opens no producer connection and starts no librdkafka threads. `close` releases it; the
next `publish` would build a new one. Rejected: building it in a `start()` called by run(),
which fails faster on settings librdkafka rejects, but those are already checked when the
consumer is built (kafka_settings.check), and it would cost every run a producer.

Ownership: the control thread calls `publish`, `poll` and `close`; delivery callbacks
run inside `publish`/`poll`/`close`, so on that thread too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

from pyrallel_consumer.control.producer import (
    QUEUE_FULL_WAIT_S,
    LazyProducer,
    Refused,
    described,
    headers_size,
    producer_config,
)
from pyrallel_consumer.errors import DeadLetterError, last_line
from pyrallel_consumer.record import Record

# Kept importable from here: the dead-letter producer's settings and sizes (producer.py).
__all__ = [
    "DeadLetterPublisher",
    "DeadLetterSink",
    "OnDelivered",
    "headers_size",
    "producer_config",
]

log = logging.getLogger(__name__)

HEADER_PREFIX = "pyrallel."
# Bounds of the error headers, in bytes. The traceback keeps its first frames and, mostly, its
# end, where the exception is; the error line keeps mostly its start (the exception's type).
TRACEBACK_MAX_BYTES = 8 * 1024
TRACEBACK_HEAD_BYTES = 2 * 1024
ERROR_MAX_BYTES = 1024
ERROR_HEAD_BYTES = 768

Headers = list[tuple[str, str | bytes | None]]


class OnDelivered(Protocol):
    """Called once per dead letter: `cause` None when the broker acknowledged it, else why it
    failed (text), with its Kafka error `code` when there is one."""

    def __call__(self, cause: str | None, code: int | None = None) -> None: ...


class DeadLetterSink(Protocol):
    """Where failed records go (`DeadLetterPublisher` in production, a fake in unit tests).
    Resources are built lazily by `publish` and released by `close`."""

    def publish(self, record: Record, error: str, attempts: int, on_delivered: OnDelivered) -> None:
        """Queue a dead letter; `on_delivered` runs later, once, inside `poll` or `close`.
        Raises DeadLetterError when it is refused at once (then nothing was queued and
        `on_delivered` never runs)."""

    def poll(self) -> None:
        """Serve delivery callbacks that are due; never blocks."""

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for deliveries, give up on the rest (each one's
        `on_delivered` runs with the cause) and release what `publish` built. Returns how
        many were given up."""


def cut(text: str, limit: int, head: int) -> bytes:
    """`text` as UTF-8, at most `limit` bytes: whole when it fits, else its first `head` bytes
    and its last ones around a line saying how many bytes were cut (a character split at a cut
    is dropped, so the result is valid UTF-8)."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    # The marker's length depends on the count it shows; the total's digits bound it.
    tail = limit - head - len(_marker(len(data)))
    marker = _marker(len(data) - head - tail)
    start = data[:head].decode("utf-8", "ignore").encode()
    end = data[len(data) - tail :].decode("utf-8", "ignore").encode()
    return start + marker + end


def _marker(count: int) -> bytes:
    return b"\n[... %d bytes cut ...]\n" % count


def dead_letter_headers(record: Record, error: str, attempts: int) -> Headers:
    """The record's own headers, then the `pyrallel.*` ones (error and traceback bounded)."""
    return [
        *(record.headers or []),
        (HEADER_PREFIX + "error", cut(last_line(error), ERROR_MAX_BYTES, ERROR_HEAD_BYTES)),
        (HEADER_PREFIX + "traceback", cut(error, TRACEBACK_MAX_BYTES, TRACEBACK_HEAD_BYTES)),
        (HEADER_PREFIX + "attempts", str(attempts).encode()),
        (HEADER_PREFIX + "source.topic", record.topic.encode()),
        (HEADER_PREFIX + "source.partition", str(record.partition).encode()),
        (HEADER_PREFIX + "source.offset", str(record.offset).encode()),
    ]


class DeadLetterPublisher:
    """A `DeadLetterSink` producing to `topic` with an idempotent producer, built at the first
    `publish` (producer.py). `unacknowledged`: dead letters produced and not acknowledged (or
    refused) yet."""

    def __init__(
        self,
        topic: str,
        kafka_config: Mapping[str, Any],
        explicit: Mapping[str, Any] | None = None,
        queue_full_wait_s: float = QUEUE_FULL_WAIT_S,
        producer: LazyProducer | None = None,
        error_cb: Callable[[KafkaError], None] | None = None,
    ) -> None:
        """`producer`: one to share (exactly once: the transactional output producer, so
        dead letters join its transactions); None builds its own from the settings, whose
        client-level errors go to `error_cb` (a fatal one ends the run)."""
        self.topic = topic
        self._producer = producer or LazyProducer(
            producer_config(kafka_config, explicit),
            "dead-letter producer",
            "dead letter",
            "dlq_producer_config",
            queue_full_wait_s,
            error_cb=error_cb,
        )

    @property
    def unacknowledged(self) -> int:
        return self._producer.unacknowledged

    def publish(
        self,
        record: Record,
        error: str,
        attempts: int,
        on_delivered: OnDelivered,
    ) -> None:
        headers = dead_letter_headers(record, error, attempts)
        producer = self._producer

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                on_delivered(None)
            elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                size = producer.size_text(record.key, record.value, headers)
                on_delivered(producer.too_large(self.topic, size, by_broker=True), err.code())
            else:
                on_delivered(described(err), err.code())

        try:
            producer.produce(self.topic, record.value, record.key, headers, delivered)
        except Refused as refused:
            raise DeadLetterError(
                record.topic,
                record.partition,
                record.offset,
                self.topic,
                refused.cause,
                refused.code,
            ) from refused.__cause__

    def poll(self) -> None:
        self._producer.poll()

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for outstanding deliveries, then purge the rest: their
        `on_delivered` runs with _PURGE_QUEUE or _PURGE_INFLIGHT, so no record stays held for a
        dead letter that will never be acknowledged (one in flight may still reach the topic;
        its record is redone, so it may be dead-lettered twice: at least once). Releases the
        producer. Returns how many were purged."""
        given_up = self._producer.close(timeout)
        if self._producer.missing:  # not reported even after the purge: their records stay held
            log.warning(
                "dead-letter producer closed with %d reports missing", self._producer.missing
            )
        return given_up
