"""The record a handler receives: one Kafka message, detached from librdkafka.

Threads: built on the control thread (in a process worker, on its main thread, from the pipe)
and handed with its work item to the thread running the handler; nothing of the library
changes it afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyrallel_consumer.native import bind_twin

Headers = list[tuple[str, bytes | None]]


class Record:
    """One consumed Kafka record.

    A plain slotted class rather than a dataclass: it is built once per record on the hot path
    (and by the Cython codec in worker processes), so construction must be cheap.
    """

    __slots__ = ("headers", "key", "offset", "partition", "timestamp", "topic", "value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        timestamp: int = 0,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp  # milliseconds since the epoch, as Kafka stores it

    def __repr__(self) -> str:
        return (
            f"Record(topic={self.topic!r}, partition={self.partition}, offset={self.offset}, "
            f"key={self.key!r})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, type(self)):  # not `Record`: the native twin rebinds it
            return NotImplemented
        return (
            self.topic == other.topic
            and self.partition == other.partition
            and self.offset == other.offset
            and self.key == other.key
            and self.value == other.value
            and self.headers == other.headers
            and self.timestamp == other.timestamp
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, compared by value

    def __reduce__(self) -> tuple[type[Record], tuple[object, ...]]:
        return (
            type(self),
            (
                self.topic,
                self.partition,
                self.offset,
                self.key,
                self.value,
                self.headers,
                self.timestamp,
            ),
        )


# The native twin (ext/records.pxi, not tracked by the cyclic GC) replaces the name above when
# built, unless PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the
# pure-Python definition. PURE_TWIN keeps it reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "record", ("Record",))
