"""What the exactly-once tests (test_exactly_once*.py) share: reading a transactional topic to
its end under either isolation level, the exactly-once verdict on an output topic, and the
transactional (last stable) and high watermarks of a topic.

A downstream reader of an exactly-once service uses `isolation.level=read_committed`: it sees
the records of committed transactions only, and its end is the partition's last stable offset
(LSO), the first offset of the oldest transaction still open. librdkafka answers a watermark
query with the LSO under read_committed and the high watermark under read_uncommitted, so
`watermarks` gives both. A read ends when the consumer's position (which steps over the
transaction markers, never delivered) reached the high watermark: a transaction left open
makes a read_committed read time out rather than stop short.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from confluent_kafka import Consumer, Message, TopicPartition
from outputs_support import duplicates, order_violations, sources
from support import group_name

Isolation = Literal["read_committed", "read_uncommitted"]
READ_S = 120.0
Read = list[tuple[int, int, bytes | None, int, int]]  # outputs_support.sources' rows


def reader(broker: Any, isolation: Isolation) -> Consumer:
    """A consumer of a new group (nothing committed, nothing to commit) at `isolation`."""
    return Consumer(
        broker.consumer_config(group_name(f"eos-{isolation}"), **{"isolation.level": isolation})
    )


def watermarks(broker: Any, topic: str, partitions: int) -> dict[int, tuple[int, int]]:
    """Partition -> (last stable offset, high watermark), asked of the broker now."""
    ends: dict[int, list[int]] = {p: [] for p in range(partitions)}
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = reader(broker, isolation)
        try:
            for p in range(partitions):
                tp = TopicPartition(topic, p)
                ends[p].append(consumer.get_watermark_offsets(tp, timeout=30, cached=False)[1])
        finally:
            consumer.close()
    return {p: (lso, high) for p, (lso, high) in ends.items()}


def read_to_end(
    broker: Any, topic: str, partitions: int, isolation: Isolation, timeout: float = READ_S
) -> list[Message]:
    """Every record of `topic` that a reader at `isolation` gets, from the start to the high
    watermarks of now. AssertionError at `timeout` seconds (under read_committed: a
    transaction still open)."""
    highs = {p: high for p, (_, high) in watermarks(broker, topic, partitions).items()}
    consumer = reader(broker, isolation)
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout
        while True:
            positions = {
                tp.partition: tp.offset
                for tp in consumer.position([TopicPartition(topic, p) for p in highs])
            }
            if all(positions[p] >= high for p, high in highs.items()):
                return messages
            assert time.monotonic() < deadline, (
                f"{isolation} read of {topic}: positions {positions} short of {highs} after "
                f"{timeout:.0f} s ({len(messages)} records read)"
            )
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                messages.append(message)
    finally:
        consumer.close()


@dataclass(frozen=True)
class Verdict:
    """What a read of the output topic holds against the inputs that should each have one
    output: inputs (partition, offset) with no output, outputs beyond the first per input,
    and keys whose outputs go back in input offset within an output partition."""

    missing: set[tuple[int, int]]
    duplicates: int
    order_violations: list[str]

    def assert_exactly_once(self, ordered: bool = True) -> None:
        missing = sorted(self.missing)
        assert not missing, f"{len(missing)} outputs missing, e.g. {missing[:5]}"
        assert self.duplicates == 0, f"{self.duplicates} outputs written more than once"
        if ordered:
            assert self.order_violations == [], self.order_violations[:5]


def verdict(expected: Iterable[tuple[int, int]], read: Read) -> Verdict:
    """`expected`: (input partition, input offset) of every record that should have an output;
    an output of any other input counts as a duplicate."""
    want = set(expected)
    got = {(p, o) for p, o, *_ in read}
    strays = sum(1 for p, o, *_ in read if (p, o) not in want)
    return Verdict(want - got, duplicates(read) + strays, order_violations(read))


def committed_outputs(broker: Any, topic: str, partitions: int) -> Read:
    """The outputs a downstream read_committed reader sees (outputs_support.sources rows)."""
    return sources(read_to_end(broker, topic, partitions, "read_committed"))


def dead_letter_sources(messages: Iterable[Message]) -> list[tuple[int, int]]:
    """(source partition, source offset) of each dead letter, from its pyrallel.* headers."""
    out = []
    for message in messages:
        headers = dict(message.headers() or [])
        out.append(
            (
                int(headers["pyrallel.source.partition"]),
                int(headers["pyrallel.source.offset"]),
            )
        )
    return out
