"""The producer the library builds for its own writes (dead letters, the handler's outputs).

`LazyProducer` is one librdkafka producer, idempotent (so librdkafka's own retries neither
reorder nor duplicate a partition's records), built at its first `produce`: a run that never
writes opens no producer connection and starts no librdkafka threads. It counts what waits for
the broker (`unacknowledged`), retries a `produce` while the local queue is full (serving
acknowledgements meanwhile, up to `queue_full_wait_s`), and turns every way a write can be
refused at once into `Refused` with a text that says the fix. Its users (dead_letter.py,
outputs.py) decide what a refusal means for the record; the texts name their settings option
(`dlq_producer_config`, `output_producer_config`).

Ownership: the control thread calls `produce`, `poll` and `close`; librdkafka runs delivery
callbacks (and the error callback) inside them, so on that thread too.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from pyrallel_consumer.control.kafka_log import with_logger
from pyrallel_consumer.kafka_settings import producer_settings
from pyrallel_consumer.redact import redact_text

# librdkafka's default message.max.bytes: the largest message the producer accepts.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000

# A full local queue (BufferError) empties as the broker acknowledges: serve acknowledgements
# in steps of QUEUE_FULL_POLL_S for up to QUEUE_FULL_WAIT_S, then give up. What the library
# writes is bounded by max_in_flight records, so a queue that stays full means
# queue.buffering.max.messages or .kbytes is too small for them, not a burst; blocking the
# control thread longer would delay the poll loop for nothing.
QUEUE_FULL_WAIT_S = 1.0
QUEUE_FULL_POLL_S = 0.05

# While everything is acknowledged, the producer is still polled this often: its librdkafka
# log lines (routed to logging, control/kafka_log.py) queue up until a poll serves them.
IDLE_POLL_INTERVAL_S = 1.0

# The longest `start` waits for the cluster's metadata.
START_METADATA_TIMEOUT_S = 2.0

# How long `close` serves the reports of writes it gave up on (they arrive at once).
PURGE_SETTLE_S = 1.0

Headers = Sequence[tuple[str, str | bytes | None]]
OnDelivery = Callable[[KafkaError | None, Message], None]


class Refused(Exception):
    """A write refused at once: `cause` says why and the fix, `code` is the Kafka error code
    (None when there is none), `__cause__` librdkafka's exception."""

    def __init__(self, cause: str, code: int | None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.code = code


def producer_config(
    kafka_config: Mapping[str, Any], explicit: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A library producer's settings: `explicit` (the option giving them) when given, else
    every setting of the consumer's `kafka_config` that a producer takes (bootstrap servers,
    security.protocol, sasl.*, ssl.*, callables such as oauth_cb, ...). Idempotence is on
    unless the settings say otherwise (with it, acks=all)."""
    config = dict(explicit) if explicit is not None else producer_settings(kafka_config)
    config.setdefault("enable.idempotence", True)
    config.setdefault("linger.ms", 5)
    return config


def headers_size(headers: Headers | None) -> int:
    """Bytes of header names and values (librdkafka adds a few bytes of framing to each)."""
    return sum(len(name.encode()) + len(value or b"") for name, value in headers or ())


def kafka_error(exc: BaseException) -> KafkaError | None:
    """The KafkaError a KafkaException carries, if any."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def described(err: KafkaError) -> str:
    """`NAME: text` of a Kafka error."""
    return f"{err.name()}: {err.str()}"


class LazyProducer:
    """One idempotent producer, built at the first `produce` (module doc).

    `role` names it in messages ("dead-letter producer"), `noun` what it writes ("dead
    letter"), `option` the option that gives its settings explicitly ("dlq_producer_config");
    `error_cb` gets librdkafka's client-level errors (a fatal one, e.g. an idempotence failure,
    means nothing more can be written)."""

    def __init__(
        self,
        config: dict[str, Any],
        role: str,
        noun: str,
        option: str,
        queue_full_wait_s: float = QUEUE_FULL_WAIT_S,
        error_cb: Callable[[KafkaError], None] | None = None,
    ) -> None:
        self.config = config
        self.role = role
        self.noun = noun
        self.option = option
        self.max_bytes = int(config.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self._queue_full_wait_s = queue_full_wait_s
        self._error_cb = error_cb
        self._producer: Producer | None = None
        self.unacknowledged = 0
        self.missing = 0  # after `close`: reports that never came, even after a purge
        self._next_idle_poll = 0.0

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None,
        on_delivery: OnDelivery,
        partition: int | None = None,
    ) -> None:
        """Queue one record; `on_delivery(err, msg)` runs once, inside a later `poll`,
        `produce` or `close` (err None: acknowledged). Raises Refused when it is refused at
        once (then `on_delivery` never runs): the producer cannot be built, the record is over
        message.max.bytes, the local queue stayed full, or librdkafka refused it (an unknown
        partition, a fatal producer)."""
        producer = self._producer or self._built()
        delivered = _Counted(self, on_delivery)
        # Positional arguments (topic, value, key, partition, callback, on_delivery,
        # timestamp, headers; -1 is librdkafka's "any partition", 0 "now"): confluent-kafka
        # parses keywords at about 0.5 us more per record (measured). Acknowledgements are
        # served by `poll`, once per loop turn, not per record: a poll per produce cost about
        # half of the output path's time on the control thread.
        args = (topic, value, key, -1 if partition is None else partition, delivered, None, 0)
        try:
            producer.produce(*args, headers)  # type: ignore[arg-type]  # any pair sequence
        except (BufferError, KafkaException) as exc:
            self._produce_refused(producer, exc, (*args, headers))
        self.unacknowledged += 1

    def _produce_refused(
        self, producer: Producer, exc: BufferError | KafkaException, args: tuple[Any, ...]
    ) -> None:
        """`produce` refused `args` at once with `exc`: retry while the local queue is full
        (serving acknowledgements, up to queue_full_wait_s), else raise Refused."""
        topic, value, key, headers = args[0], args[1], args[2], args[7]
        deadline = time.monotonic() + self._queue_full_wait_s
        while isinstance(exc, BufferError):
            if time.monotonic() >= deadline:
                raise Refused(self._queue_full(topic), KafkaError._QUEUE_FULL) from exc
            self._served(lambda: producer.poll(QUEUE_FULL_POLL_S))  # acks make room
            try:
                producer.produce(*args)
                return
            except (BufferError, KafkaException) as again:
                exc = again
        err = kafka_error(exc)
        code = err.code() if err is not None else None
        if code == KafkaError.MSG_SIZE_TOO_LARGE:
            size = self.size_text(key, value, headers)
            raise Refused(self.too_large(topic, size, by_broker=False), code) from exc
        if err is not None and err.fatal() and self._error_cb is not None:
            self._error_cb(err)  # the run ends at once: no use redoing the record
        raise Refused(described(err) if err is not None else str(exc), code) from exc

    def start(self) -> None:
        """Build the producer now rather than at the first `produce` (Refused when it cannot
        be), and read the cluster's metadata once (up to START_METADATA_TIMEOUT_S; a failure
        is left to the writes to report): with that request an idempotent producer has its
        producer id and its first acknowledgement about 0.06 s after it was built, against
        0.5 s without (measured, one local broker), a wait that held every record in flight."""
        producer = self._built()
        with contextlib.suppress(KafkaException):
            producer.list_topics(timeout=START_METADATA_TIMEOUT_S)

    def _served(self, serve: Callable[[], int | None]) -> int:
        """`serve()` (a poll or flush of the producer), returning its count (0 for None).
        confluent-kafka raises a fatal error of the producer (a transactional producer fenced
        by a newer instance, an idempotence failure) from poll and flush rather than passing
        it to error_cb: hand it to error_cb here, which ends the run with KafkaFatalError."""
        try:
            return serve() or 0
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is None or not err.fatal() or self._error_cb is None:
                raise
            self._error_cb(err)
            return self.unacknowledged

    def _built(self) -> Producer:
        if self._producer is None:
            settings = with_logger(self.config)
            if self._error_cb is not None:
                settings.setdefault("error_cb", self._error_cb)
            try:
                self._producer = Producer(settings)
            except (KafkaException, TypeError, ValueError) as exc:
                err = kafka_error(exc)
                text = redact_text(err.str() if err is not None else str(exc), self.config)
                raise Refused(
                    f"could not build the {self.role}: {text} (fix {self.option})",
                    err.code() if err is not None else None,
                ) from exc
        return self._producer

    @staticmethod
    def size_text(key: bytes | None, value: bytes | None, headers: Headers | None) -> str:
        """`N bytes (key K, value V, headers H) plus the record framing`."""
        k, v, h = len(key or b""), len(value or b""), headers_size(headers)
        return (
            f"{k + v + h:,} bytes (key {k:,}, value {v:,}, headers {h:,}) plus the record framing"
        )

    def too_large(self, topic: str, size: str, by_broker: bool) -> str:
        """Why a record of `size` (size_text) was refused as MSG_SIZE_TOO_LARGE, and the fix."""
        limit = f"message.max.bytes={self.max_bytes:,}"
        if by_broker:
            return (
                f"MSG_SIZE_TOO_LARGE: the broker refused the {self.noun} of {size}: raise "
                f"max.message.bytes of topic {topic!r} (and {limit} of the {self.role}, in "
                f"kafka_config or {self.option}, if it is below that)"
            )
        return (
            f"MSG_SIZE_TOO_LARGE: the {self.noun} for topic {topic!r} is {size}, over the "
            f"{self.role}'s {limit}: raise message.max.bytes (in kafka_config, which the "
            f"{self.role} inherits, or in {self.option} when given) and max.message.bytes of "
            f"topic {topic!r} above it"
        )

    def _queue_full(self, topic: str) -> str:
        messages = self.config.get("queue.buffering.max.messages", "default")
        kbytes = self.config.get("queue.buffering.max.kbytes", "default")
        return (
            f"_QUEUE_FULL: the {self.role}'s local queue stayed full for "
            f"{self._queue_full_wait_s:.1f} s with {self.unacknowledged} {self.noun}s waiting for "
            f"the broker (queue.buffering.max.messages={messages}, queue.buffering.max.kbytes="
            f"{kbytes}): raise them in {self.option}, or check that the broker of topic "
            f"{topic!r} answers"
        )

    def poll(self) -> None:
        """Serve delivery callbacks that are due; never blocks."""
        producer = self._producer
        if producer is None:
            return
        if self.unacknowledged:
            self._served(lambda: producer.poll(0))
            return
        now = time.monotonic()
        if now >= self._next_idle_poll:
            self._next_idle_poll = now + IDLE_POLL_INTERVAL_S
            self._served(lambda: producer.poll(0))

    def flush(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for every outstanding delivery, serving their
        callbacks; returns how many are still outstanding."""
        if self._producer is None or not self.unacknowledged:
            return 0
        producer = self._producer
        self._served(lambda: producer.flush(timeout))
        return self.unacknowledged

    def close(self, timeout: float) -> int:
        """Wait up to `timeout` seconds for outstanding deliveries, then purge the rest: their
        callbacks run with _PURGE_QUEUE or _PURGE_INFLIGHT (one in flight may still reach its
        topic). Releases the producer; the next `produce` builds a new one. Returns how many
        were purged; `unacknowledged` is 0 afterwards (with `missing` set to the reports that
        never came, if any)."""
        # Dropping the only reference destroys librdkafka's handle when this returns.
        producer, self._producer = self._producer, None
        self.missing = 0
        if producer is None:
            return 0
        given_up = self._served(lambda: producer.flush(timeout)) if self.unacknowledged else 0
        if given_up:
            producer.purge()
            self._served(lambda: producer.flush(PURGE_SETTLE_S))  # the purged ones' reports
        self.missing, self.unacknowledged = self.unacknowledged, 0
        return given_up


class _Counted:
    """`on_delivery`, once its answer is counted off `unacknowledged`: a slotted object rather
    than a closure (output_sink._Delivery says why)."""

    __slots__ = ("_on_delivery", "_producer")

    def __init__(self, producer: LazyProducer, on_delivery: OnDelivery) -> None:
        self._producer = producer
        self._on_delivery = on_delivery

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self._producer.unacknowledged -= 1
        self._on_delivery(err, msg)
