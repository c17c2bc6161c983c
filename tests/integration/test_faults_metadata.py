"""Issue 17, fault 2: the committed metadata lists every completed record above the committed
offset, so a restart redoes only what was in flight.

One partition, keys drawn at random, key order, the async engine; the record at offset 5 blocks
until the test releases it, so every later record of its key waits behind it while the other
keys' records complete: the completed offsets above 5 have irregular gaps. Before the fix the
partition was blocked only once the completed set as it stood no longer fitted, the records
already received completed afterwards, and the commit kept a halved prefix of the list: the
next consumer redid thousands of completed records. Now the partition stops taking records
while every outcome still fits; the run is ended by stop() with the record still stuck, and a
second consumer of the group handles every record the first did not complete and, of those it
did, at most the ones that were in flight.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from typing import Any

import pytest
from faults_support import Completions, RunThread, committed, group_name, produce_each, wait_for

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.topic_partition import TopicPartition

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 30_000
# Three keys: a third of the offsets above the stuck one wait behind it, a pattern that barely
# compresses, so 30,000 records are enough to outgrow the 4096-byte limit (issue: 10 keys,
# 60,000 records).
KEYS = 3
STUCK_OFFSET = 5
MAX_IN_FLIGHT = 200


def test_committed_metadata_lists_every_completed_record(
    kafka_broker: Any, new_topic: Callable[..., str]
) -> None:
    topic = new_topic(kafka_broker, 1)
    rng = random.Random(17)
    keys = [f"k{rng.randrange(KEYS)}".encode() for _ in range(RECORDS)]
    produce_each(
        kafka_broker,
        topic,
        ({"key": key, "value": b"v", "partition": 0} for key in keys),
    )
    stuck_key = keys[STUCK_OFFSET]
    group = group_name("metadata")
    release = threading.Event()

    async def handle(record: Record) -> None:
        if record.offset == STUCK_OFFSET:
            while not release.is_set():
                await asyncio.sleep(0.01)

    def consumer_of_group(on_complete: Completions, **options: Any) -> ParallelConsumer:
        """A consumer of the group, key order on the async engine, keeping its completions."""
        return ParallelConsumer(
            kafka_broker.consumer_config(group),
            topics=[topic],
            handler=handle,
            engine="async",
            ordering="key",
            max_in_flight=MAX_IN_FLIGHT,
            on_complete=on_complete,
            **options,
        )

    first = Completions()
    consumer = consumer_of_group(first, commit_interval_s=0.5, drain_timeout_s=1.0)
    run = RunThread(consumer)
    name = TopicPartition(topic, 0)

    def settled() -> bool:
        """Blocked (or everything received), and every record received that does not wait
        behind the stuck one completed: nothing more will happen until the release."""
        stats = consumer.stats()
        received = stats["received"]
        blocked = bool((stats["partitions"].get(name) or {}).get("blocked"))
        if not blocked and received < RECORDS:
            return False
        expected = sum(1 for o in range(received) if o < STUCK_OFFSET or keys[o] != stuck_key)
        return len(first) == expected

    try:
        wait_for(settled, "the partition to settle behind the stuck record", alive=run.alive)
        run.stop_and_join()
    finally:
        release.set()
    assert run.error is None, run.error

    done = first.offsets()
    assert STUCK_OFFSET not in done
    above = {o for o in done if o > STUCK_OFFSET}
    assert len(above) > 5_000  # thousands completed above the stuck record
    tp = committed(kafka_broker, group, topic)[0]
    assert tp.offset == STUCK_OFFSET
    assert len(tp.metadata) <= offset_metadata.MAX_METADATA_BYTES
    assert offset_metadata.decode(tp.offset, tp.metadata) == above

    # A second consumer of the group: redoes the stuck record and the ones behind it, and of
    # the records the first completed at most those that were in flight when it stopped.
    second = Completions()
    consumer = consumer_of_group(second)
    consumer.run(until_end=True, timeout=120.0)
    handled = second.offsets()
    assert handled | done == set(range(RECORDS))
    redone = handled & done
    assert len(redone) <= MAX_IN_FLIGHT, f"{len(redone)} completed records redone"
