"""Handlers and checks shared by the consume-transform-produce tests (test_outputs*.py).

Every handler returns one output per record: the record's key, its value, and a `src` header
"partition:offset" naming the input, to the topic named by OUT_TOPIC_ENV (module-level
functions: the process engine pickles them, and its workers read the environment).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from support import group_name

from pyrallel_consumer import Output, Record

OUT_TOPIC_ENV = "PYRALLEL_TEST_OUT_TOPIC"


def output_of(record: Record) -> Output:
    return Output(
        os.environ[OUT_TOPIC_ENV],
        record.value,
        key=record.key,
        headers=[("src", f"{record.partition}:{record.offset}")],
    )


def transform(record: Record) -> Output:
    return output_of(record)


async def transform_async(record: Record) -> list[Output]:
    await asyncio.sleep(0)
    return [output_of(record)]


def transform_batch(records: list[Record]) -> list[Output]:
    return [output_of(record) for record in records]


def sources(messages: Iterable[Any]) -> list[tuple[int, int, bytes | None, int, int]]:
    """(input partition, input offset, key, output partition, output offset) per output read."""
    out = []
    for message in messages:
        headers = dict(message.headers() or [])
        partition, offset = map(int, headers["src"].decode().split(":"))
        out.append((partition, offset, message.key(), message.partition(), message.offset()))
    return out


def order_violations(read: list[tuple[int, int, bytes | None, int, int]]) -> list[str]:
    """Keys whose outputs, in one output partition's order, go back in input offset. A record
    written twice (at least once) may repeat an earlier offset: only a first appearance that
    is below the highest offset seen so far counts."""
    problems = []
    seen: set[tuple[int, int]] = set()
    highest: dict[tuple[bytes | None, int], int] = {}
    for in_partition, in_offset, key, out_partition, _ in sorted(read, key=lambda r: (r[3], r[4])):
        if (in_partition, in_offset) in seen:
            continue
        seen.add((in_partition, in_offset))
        lane = (key, out_partition)
        if in_offset < highest.get(lane, -1):
            problems.append(f"key {key!r}: offset {in_offset} after {highest[lane]}")
        highest[lane] = max(highest.get(lane, -1), in_offset)
    return problems


def duplicates(read: list[tuple[int, int, bytes | None, int, int]]) -> int:
    """Outputs read beyond the first per input record."""
    counts = Counter((r[0], r[1]) for r in read)
    return sum(n - 1 for n in counts.values())


def read_all(broker: Any, topic: str, partitions: int, timeout: float = 120.0) -> list[Any]:
    """Every record of `topic` up to its end offsets now (a reader that stops at a count
    misses the tail when records were written twice)."""
    consumer = Consumer(broker.consumer_config(group_name("outputs-reader")))
    try:
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in range(partitions)
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        positions = dict.fromkeys(ends, 0)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(positions[p] < ends[p] for p in ends):
            assert time.monotonic() < deadline, f"read {len(messages)} of {sum(ends.values())}"
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                messages.append(message)
                positions[message.partition()] = message.offset() + 1
        return messages
    finally:
        consumer.close()
