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
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pyrallel_consumer.control.kafka_log import with_logger
from pyrallel_consumer.errors import DeadLetterError, last_line
from pyrallel_consumer.kafka_settings import producer_settings
from pyrallel_consumer.record import Record
from pyrallel_consumer.redact import redact_text

log = logging.getLogger(__name__)

HEADER_PREFIX = "pyrallel."
# Bounds of the error headers, in bytes. The traceback keeps its first frames and, mostly, its
# end, where the exception is; the error line keeps mostly its start (the exception's type).
TRACEBACK_MAX_BYTES = 8 * 1024
TRACEBACK_HEAD_BYTES = 2 * 1024
ERROR_MAX_BYTES = 1024
ERROR_HEAD_BYTES = 768

# librdkafka's default message.max.bytes: the largest message the producer accepts.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000

# A full local queue (BufferError) empties as the broker acknowledges: serve acknowledgements
# in steps of QUEUE_FULL_POLL_S for up to QUEUE_FULL_WAIT_S, then give up. Dead letters waiting
# are bounded by max_in_flight, so a queue that stays full means queue.buffering.max.messages
# or .kbytes is too small for them, not a burst; blocking the control thread longer would
# delay the poll loop for nothing.
QUEUE_FULL_WAIT_S = 1.0
QUEUE_FULL_POLL_S = 0.05

# While every dead letter is acknowledged, the producer is still polled this often: its
# librdkafka log lines (routed to logging, control/kafka_log.py) queue up until a poll serves
# them.
IDLE_POLL_INTERVAL_S = 1.0

# How long `close` serves the reports of dead letters it gave up on (they arrive at once).
PURGE_SETTLE_S = 1.0

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


def headers_size(headers: Sequence[tuple[str, bytes | str | None]]) -> int:
    """Bytes of header names and values (librdkafka adds a few bytes of framing to each)."""
    return sum(len(name.encode()) + len(value or b"") for name, value in headers)


class DeadLetterPublisher:
    """A `DeadLetterSink` producing to `topic` with an idempotent producer, built at the first
    `publish`. `unacknowledged`: dead letters produced and not acknowledged (or refused) yet."""

    def __init__(
        self,
        topic: str,
        kafka_config: Mapping[str, Any],
        explicit: Mapping[str, Any] | None = None,
        queue_full_wait_s: float = QUEUE_FULL_WAIT_S,
    ) -> None:
        self.topic = topic
        self._config = producer_config(kafka_config, explicit)
        self._max_bytes = int(self._config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self._queue_full_wait_s = queue_full_wait_s
        self._producer: Producer | None = None
        self.unacknowledged = 0
        self._next_idle_poll = 0.0

    def publish(
        self,
        record: Record,
        error: str,
        attempts: int,
        on_delivered: OnDelivered,
    ) -> None:
        producer = self._producer_for(record)
        headers = dead_letter_headers(record, error, attempts)

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            self.unacknowledged -= 1
            if err is None:
                on_delivered(None)
            elif err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                on_delivered(self._too_large(record, headers, by_broker=True), err.code())
            else:
                on_delivered(f"{err.name()}: {err.str()}", err.code())

        self._produce(producer, record, headers, delivered)
        self.unacknowledged += 1
        producer.poll(0)

    def _producer_for(self, record: Record) -> Producer:
        if self._producer is None:
            try:
                self._producer = Producer(with_logger(self._config))
            except (KafkaException, TypeError, ValueError) as exc:
                err = _kafka_error(exc)
                text = redact_text(err.str() if err is not None else str(exc), self._config)
                raise self._error(
                    record,
                    f"could not build the dead-letter producer: {text} (fix dlq_producer_config)",
                    exc,
                ) from exc
        return self._producer

    def _produce(
        self,
        producer: Producer,
        record: Record,
        headers: Headers,
        delivered: Callable[[KafkaError | None, Message], None],
    ) -> None:
        """`produce`, retried while the local queue is full (up to queue_full_wait_s);
        DeadLetterError when the producer refuses the dead letter."""
        deadline: float | None = None
        while True:
            try:
                producer.produce(
                    self.topic,
                    key=record.key,
                    value=record.value,
                    headers=headers,
                    on_delivery=delivered,
                )
                return
            except BufferError as exc:
                now = time.monotonic()
                deadline = now + self._queue_full_wait_s if deadline is None else deadline
                if now >= deadline:
                    raise self._error(record, self._queue_full(), exc) from exc
                producer.poll(QUEUE_FULL_POLL_S)  # acknowledgements make room
            except KafkaException as exc:
                err = _kafka_error(exc)
                if err is not None and err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    cause = self._too_large(record, headers, by_broker=False)
                else:
                    cause = f"{err.name()}: {err.str()}" if err is not None else str(exc)
                raise self._error(record, cause, exc) from exc

    def _error(self, record: Record, cause: str, exc: BaseException) -> DeadLetterError:
        err = _kafka_error(exc)
        code = err.code() if err is not None else None
        if isinstance(exc, BufferError):
            code = KafkaError._QUEUE_FULL
        return DeadLetterError(
            record.topic, record.partition, record.offset, self.topic, cause, code
        )

    def _too_large(self, record: Record, headers: Headers, by_broker: bool) -> str:
        key, value = len(record.key or b""), len(record.value or b"")
        header_bytes = headers_size(headers)
        size = f"{key + value + header_bytes:,} bytes (key {key:,}, value {value:,}, headers "
        size += f"{header_bytes:,}) plus the record framing"
        limit = f"message.max.bytes={self._max_bytes:,}"
        if by_broker:
            return (
                f"MSG_SIZE_TOO_LARGE: the broker refused the dead letter of {size}: raise "
                f"max.message.bytes of topic {self.topic!r} (and {limit} of the producer, in "
                "kafka_config or dlq_producer_config, if it is below that)"
            )
        return (
            f"MSG_SIZE_TOO_LARGE: the dead letter is {size}, over the dead-letter producer's "
            f"{limit}: raise message.max.bytes (in kafka_config, which the dead-letter producer "
            f"inherits, or in dlq_producer_config when given) and max.message.bytes of topic "
            f"{self.topic!r} above it"
        )

    def _queue_full(self) -> str:
        messages = self._config.get("queue.buffering.max.messages", "default")
        kbytes = self._config.get("queue.buffering.max.kbytes", "default")
        return (
            f"_QUEUE_FULL: the dead-letter producer's local queue stayed full for "
            f"{self._queue_full_wait_s:.1f} s with {self.unacknowledged} dead letters waiting for "
            f"the broker (queue.buffering.max.messages={messages}, queue.buffering.max.kbytes="
            f"{kbytes}): raise them in dlq_producer_config, or check that the broker of topic "
            f"{self.topic!r} answers"
        )

    def poll(self) -> None:
        producer = self._producer
        if producer is None:
            return
        if self.unacknowledged:
            producer.poll(0)
            return
        now = time.monotonic()
        if now >= self._next_idle_poll:
            self._next_idle_poll = now + IDLE_POLL_INTERVAL_S
            producer.poll(0)

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for outstanding deliveries, then purge the rest: their
        `on_delivered` runs with _PURGE_QUEUE or _PURGE_INFLIGHT, so no record stays held for a
        dead letter that will never be acknowledged (one in flight may still reach the topic;
        its record is redone, so it may be dead-lettered twice: at least once). Releases the
        producer. Returns how many were purged."""
        # Dropping the only reference destroys librdkafka's handle when this returns.
        producer, self._producer = self._producer, None
        if producer is None:
            return 0
        given_up: int = producer.flush(timeout) if self.unacknowledged else 0
        if given_up:
            producer.purge()
            producer.flush(PURGE_SETTLE_S)  # serves the purged ones' reports
        if self.unacknowledged:  # not reported even after the purge: their records stay held
            log.warning("dead-letter producer closed with %d reports missing", self.unacknowledged)
            self.unacknowledged = 0
        return given_up


def _kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError a KafkaException carries, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None
