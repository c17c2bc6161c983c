"""Stuck record: one record blocks while thousands after it complete.

Keys are random (3 of them) and ordering is by key, so the stuck record holds back every later
record of its key: the completed offsets above the committed position have irregular gaps, and
their encoding outgrows the 4096-byte commit metadata limit. The partition must then be blocked
and paused (no new records taken), the committed metadata must stay within the limit, nothing
crashes, and once the record is released everything completes and is committed.
"""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from support import committed, produce_each, wait_for

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.topic_partition import TopicPartition as Partition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 40_000
KEYS = 3
STUCK_OFFSET = 100
WAIT_S = 120.0


def produce_random_keys(broker: Any, topic: str, count: int, keys: int, seed: int) -> None:
    """`count` records to partition 0 with keys drawn at random (the fixture's are cyclic)."""
    rng = random.Random(seed)

    def message(i: int) -> dict[str, Any]:
        key = f"key-{rng.randrange(keys)}".encode()
        return {"key": key, "value": f"value-{i}".encode(), "partition": 0}

    produce_each(broker, topic, map(message, range(count)))


def committed_0(broker: Any, group: str, topic: str) -> TopicPartition:
    return committed(broker, group, topic)[0]


def test_stuck_record_blocks_partition_then_resumes(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce_random_keys(kafka_broker, topic, RECORDS, KEYS, seed=11)
    group = f"stuck-{uuid.uuid4().hex[:8]}"
    release = threading.Event()
    handled: set[int] = set()

    async def handle(record: Record) -> None:
        if record.offset == STUCK_OFFSET:
            while not release.is_set():
                await asyncio.sleep(0.01)
        handled.add(record.offset)

    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handle,
        engine="async",
        ordering="key",
        # The stuck key's records wait in the backlog (max_in_flight_per_lane). With seed 11
        # the metadata outgrows its limit by offset ~30,700, when ~10,200 of them wait: room
        # for those, so capacity is not what pauses; but not for all 13,270, so the run cannot
        # receive every record before the block, however fast the machine.
        max_in_flight=1_000,
        backlog_size=11_500,
        commit_interval_s=0.2,
    )
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["completed"] = consumer.run(max_records=RECORDS, timeout=WAIT_S * 2)
        except BaseException as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    name = Partition(topic, 0)
    try:

        def partition() -> dict[str, Any]:
            return dict(consumer.stats()["partitions"].get(name) or {})

        wait = {"timeout": WAIT_S, "alive": thread.is_alive}
        wait_for(lambda: partition().get("blocked") is True, "the partition to block", **wait)
        wait_for(lambda: partition().get("paused") is True, "the partition to pause", **wait)
        stats = consumer.stats()
        received_when_paused = stats["received"]
        assert name in stats["paused_partitions"]
        assert stats["completed"] > 1_000  # thousands after the stuck record completed
        assert received_when_paused < RECORDS

        # What is committed meanwhile: the stuck offset, with metadata within the limit.
        def metadata_committed() -> bool:
            tp = committed_0(kafka_broker, group, topic)
            return tp.offset == STUCK_OFFSET and bool(tp.metadata)

        wait_for(metadata_committed, "a commit with metadata", **wait)
        tp = committed_0(kafka_broker, group, topic)
        assert len(tp.metadata) <= offset_metadata.MAX_METADATA_BYTES
        carried = offset_metadata.decode(tp.offset, tp.metadata)
        assert carried
        assert carried <= handled  # only records that really completed
        assert STUCK_OFFSET not in handled

        partition_stats = partition()
        assert partition_stats["blocked"] and partition_stats["paused"]
        assert consumer.stats()["received"] == received_when_paused  # took no new records
        assert thread.is_alive()
    finally:
        release.set()
    thread.join(WAIT_S * 2)
    assert not thread.is_alive()
    assert "error" not in result, result.get("error")
    assert result["completed"] == RECORDS
    assert handled == set(range(RECORDS))
    final = committed_0(kafka_broker, group, topic)
    assert final.offset == RECORDS
    assert not final.metadata
