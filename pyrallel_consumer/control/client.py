"""The seam between the control plane and Kafka: the consumer calls it makes, as a Protocol.

`ConfluentClient` (confluent-kafka) is the one production implementation; unit tests pass a
fake through the same `ClientFactory`, so the control plane is tested without a broker. The
control plane never builds a `confluent_kafka.Consumer` itself.

Ownership: every method is called by the control thread. As in librdkafka, the rebalance
callbacks given to `subscribe` run inside `consume`/`poll`/`close` on that same thread, and so
do the error callback and the log lines (kafka_log.py), which librdkafka's threads queue for
those calls to serve. The one thing shared beyond it, the log's repeat limiter, has a lock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, cast

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from pyrallel_consumer.control import broker_config
from pyrallel_consumer.control.kafka_log import with_logger
from pyrallel_consumer.topic_partition import TopicPartition

# librdkafka's "end of partition" event: informational, not an error.
PARTITION_EOF: int = KafkaError._PARTITION_EOF
# A broker connection failed: librdkafka's own log line (routed to logging) already says so.
TRANSPORT: int = KafkaError._TRANSPORT
# No broker reachable at all.
ALL_BROKERS_DOWN: int = KafkaError._ALL_BROKERS_DOWN
# librdkafka's fatal error (a fenced static member, an idempotence failure). An error object
# with this code may say `fatal() == False` (it is the code of the *event*, and the error
# callback's copy is not flagged), so both forms are checked: see `is_fatal`.
FATAL: int = KafkaError._FATAL
# Codes that mean the same as a fatal error whatever the flags say: a static member fenced by
# another with the same group.instance.id (a commit reply carries it before the fatal event).
FATAL_CODES = frozenset({FATAL, KafkaError.FENCED_INSTANCE_ID})
# The longest wait for the cluster's offset.metadata.max.bytes when a run starts.
METADATA_LIMIT_TIMEOUT_S = 10.0


class CommitOffset(NamedTuple):
    """What to commit for one partition: the position (next offset to consume) and metadata."""

    topic: str
    partition: int
    offset: int
    metadata: str


class CommittedOffset(NamedTuple):
    """What the group has committed for one partition; `offset` None when nothing was."""

    topic: str
    partition: int
    offset: int | None
    metadata: str


class ClientError(Exception):
    """A consumer call failed. `code` is the Kafka error code (None when librdkafka gave
    none), `name` its symbolic name; `fatal` and `retriable` are librdkafka's verdicts. The
    control plane decides from them whether to retry, move on or end the run."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        name: str = "",
        fatal: bool = False,
        retriable: bool = False,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.fatal = fatal or code in FATAL_CODES
        self.retriable = retriable

    @classmethod
    def of(cls, exc: KafkaException) -> ClientError:
        """The ClientError of a confluent-kafka exception, keeping its error's facts."""
        error = _kafka_error(exc)
        if error is None:
            return cls(str(exc))
        return cls(error.str(), error.code(), error.name(), error.fatal(), error.retriable())


class KafkaErrorInfo(Protocol):
    """The parts of `confluent_kafka.KafkaError` the control plane reads."""

    def fatal(self) -> bool: ...
    def retriable(self) -> bool: ...
    def code(self) -> int: ...
    def name(self) -> str: ...
    def str(self) -> str: ...


def is_fatal(error: KafkaErrorInfo) -> bool:
    """Every form of librdkafka's fatal error: flagged fatal, or carrying a FATAL_CODES code."""
    return error.fatal() or error.code() in FATAL_CODES


class CommitFailure(NamedTuple):
    """One partition whose commit the broker refused, with the refusal's facts."""

    topic: str
    partition: int
    code: int
    name: str
    text: str
    fatal: bool
    retriable: bool


class Message(Protocol):
    """The parts of `confluent_kafka.Message` the control plane reads (no copy is made: the
    real messages satisfy this protocol as they are)."""

    def error(self) -> KafkaErrorInfo | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> list[tuple[str, bytes | None]] | None: ...
    def timestamp(self) -> tuple[int, int]: ...


PartitionsCallback = Callable[[list[TopicPartition]], None]
ErrorCallback = Callable[[KafkaErrorInfo], None]


class KafkaClient(Protocol):
    """The consumer calls the control plane makes. Calls raising `ClientError` are named."""

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback,
        on_revoke: PartitionsCallback,
        on_lost: PartitionsCallback,
    ) -> None:
        """Join the group; the callbacks run inside `consume`/`poll`/`close`."""

    def consume(self, max_records: int, timeout: float) -> Sequence[Message]:
        """Up to `max_records` messages; waits up to `timeout` seconds for a full batch."""

    def poll(self, timeout: float) -> Message | None:
        """One message, waiting up to `timeout` seconds for it."""

    def commit(self, offsets: Sequence[CommitOffset]) -> list[CommitFailure]:
        """Commit synchronously. Returns the partitions the broker refused (each with its
        error; the others were committed); `ClientError` when the whole request failed (no
        coordinator, a timeout, a fatal client), in which case nothing was committed."""

    def committed(
        self, partitions: Sequence[TopicPartition], timeout: float
    ) -> list[CommittedOffset]:
        """The group's committed offsets and metadata of `partitions`; `ClientError` when
        they could not be read within `timeout` seconds."""

    def metadata_limit(self, timeout: float) -> int:
        """The longest commit metadata the cluster accepts, in bytes (the brokers'
        offset.metadata.max.bytes), read within `timeout` seconds (at most
        METADATA_LIMIT_TIMEOUT_S); 4096 (Kafka's default) when it cannot be."""

    def positions(self, partitions: Sequence[TopicPartition]) -> list[int | None]:
        """The consumer's position per partition: one past the last record it delivered or
        skipped (a transaction marker, an aborted record); None when unknown. Local, no
        broker round trip."""

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop fetching these partitions (`ClientError` if one is not assigned)."""

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Fetch these partitions again (`ClientError` if one is not assigned)."""

    def high_watermark(self, partition: TopicPartition) -> int | None:
        """The last known high watermark (cached, no broker round trip); None if unknown."""

    def query_watermarks(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        """(low, high) watermarks asked of the broker now. Under
        `isolation.level=read_committed` (librdkafka's default) `high` is the last stable
        offset. `ClientError` when the broker did not answer within `timeout` seconds."""

    def seek(self, positions: Sequence[tuple[TopicPartition, int]]) -> None:
        """Consume each partition from its offset next (records fetched beyond it are
        dropped); `ClientError` when one could not be moved."""

    def group_metadata(self) -> object:
        """The consumer's group metadata (group, generation, member), which a transaction's
        offsets carry so that the group coordinator refuses them from a fenced member."""

    def close(self) -> None:
        """Leave the group (the revoke callback runs first) and release the consumer."""


# Builds a client from the librdkafka settings and the callback for client-level errors.
ClientFactory = Callable[[Mapping[str, Any], ErrorCallback], KafkaClient]


def _keys(partitions: list[KafkaTopicPartition]) -> list[TopicPartition]:
    return [TopicPartition(tp.topic, tp.partition) for tp in partitions]


def _topic_partitions(partitions: Sequence[TopicPartition]) -> list[KafkaTopicPartition]:
    return [KafkaTopicPartition(topic, partition) for topic, partition in partitions]


class ConfluentClient:
    """`KafkaClient` on a `confluent_kafka.Consumer`; KafkaException becomes `ClientError`."""

    def __init__(self, kafka_config: Mapping[str, Any], on_error: ErrorCallback) -> None:
        self._on_error = on_error
        self._kafka_config = kafka_config
        self._consumer = Consumer(with_logger({**kafka_config, "error_cb": on_error}))

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback,
        on_revoke: PartitionsCallback,
        on_lost: PartitionsCallback,
    ) -> None:
        self._consumer.subscribe(
            list(topics),
            on_assign=lambda _consumer, partitions: on_assign(_keys(partitions)),
            on_revoke=lambda _consumer, partitions: on_revoke(_keys(partitions)),
            on_lost=lambda _consumer, partitions: on_lost(_keys(partitions)),
        )

    # The casts narrow confluent-kafka's Optional fields: a consumed message that has no error
    # always has its topic, partition and offset, and the control plane checks error() first.
    # A KafkaException out of consume()/poll() (a fatal client, a broken assignment) is an
    # error event like the errored messages they return: it goes to the error callback, so
    # it takes the one path the control plane has for those, rather than escaping raw.
    def consume(self, max_records: int, timeout: float) -> Sequence[Message]:
        try:
            return cast("list[Message]", self._consumer.consume(max_records, timeout))
        except KafkaException as exc:
            self._on_error(_error_of(exc))
            return []

    def poll(self, timeout: float) -> Message | None:
        try:
            return cast("Message | None", self._consumer.poll(timeout))
        except KafkaException as exc:
            self._on_error(_error_of(exc))
            return None

    def commit(self, offsets: Sequence[CommitOffset]) -> list[CommitFailure]:
        partitions = [
            KafkaTopicPartition(o.topic, o.partition, o.offset, metadata=o.metadata)
            for o in offsets
        ]
        try:
            result = self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            raise ClientError.of(exc) from exc
        return [
            CommitFailure(
                tp.topic,
                tp.partition,
                tp.error.code(),
                tp.error.name(),
                tp.error.str(),
                is_fatal(tp.error),
                tp.error.retriable(),
            )
            for tp in result or ()
            if tp.error is not None
        ]

    def committed(
        self, partitions: Sequence[TopicPartition], timeout: float
    ) -> list[CommittedOffset]:
        try:
            found = self._consumer.committed(_topic_partitions(partitions), timeout=timeout)
        except KafkaException as exc:
            raise ClientError.of(exc) from exc
        return [
            CommittedOffset(
                tp.topic, tp.partition, tp.offset if tp.offset >= 0 else None, tp.metadata or ""
            )
            for tp in found
        ]

    def metadata_limit(self, timeout: float) -> int:
        return broker_config.metadata_limit(
            self._kafka_config, min(timeout, METADATA_LIMIT_TIMEOUT_S)
        )

    def positions(self, partitions: Sequence[TopicPartition]) -> list[int | None]:
        try:
            found = self._consumer.position(_topic_partitions(partitions))
        except KafkaException:  # the assignment is changing: no position is known
            return [None] * len(partitions)
        return [tp.offset if tp.offset >= 0 else None for tp in found]

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        try:
            self._consumer.pause(_topic_partitions(partitions))
        except KafkaException as exc:
            raise ClientError.of(exc) from exc

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        try:
            self._consumer.resume(_topic_partitions(partitions))
        except KafkaException as exc:
            raise ClientError.of(exc) from exc

    def high_watermark(self, partition: TopicPartition) -> int | None:
        try:
            _, high = self._consumer.get_watermark_offsets(
                KafkaTopicPartition(partition.topic, partition.partition), cached=True
            )
        except KafkaException:
            return None
        return None if high == OFFSET_INVALID else int(high)

    def query_watermarks(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        try:
            found = self._consumer.get_watermark_offsets(
                KafkaTopicPartition(partition.topic, partition.partition), timeout=timeout
            )
        except KafkaException as exc:
            raise ClientError.of(exc) from exc
        if found is None:
            raise ClientError(f"no watermarks of {partition} within {timeout} s")
        low, high = found
        return int(low), int(high)

    def seek(self, positions: Sequence[tuple[TopicPartition, int]]) -> None:
        for (topic, partition), offset in positions:
            try:
                self._consumer.seek(KafkaTopicPartition(topic, partition, offset))
            except KafkaException as exc:
                raise ClientError.of(exc) from exc

    def group_metadata(self) -> object:
        return self._consumer.consumer_group_metadata()

    def close(self) -> None:
        self._consumer.close()


def _kafka_error(exc: KafkaException) -> KafkaError | None:
    """The KafkaError a confluent-kafka exception carries, if it carries one."""
    error = exc.args[0] if exc.args else None
    return error if isinstance(error, KafkaError) else None


def _error_of(exc: KafkaException) -> KafkaErrorInfo:
    """The error event of a KafkaException out of consume()/poll(), for the error callback."""
    error = _kafka_error(exc)
    return KafkaError(KafkaError._FAIL, str(exc)) if error is None else error


def confluent_client(kafka_config: Mapping[str, Any], on_error: ErrorCallback) -> KafkaClient:
    """The production `ClientFactory`."""
    return ConfluentClient(kafka_config, on_error)
