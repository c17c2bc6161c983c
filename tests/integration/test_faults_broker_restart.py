"""A broker restart mid-run (issue 10, tests): Apache Kafka with a persistent data dir is
stopped and started again on the same port while the consumer runs.

Nothing is lost, key order holds, and no record that completed and was committed before the
fault is handled again; records in flight or completed but not committed yet at the fault may
be (at least once). The run cannot end before the fault however fast the machine: records past
the middle of each partition wait for the broker to be back.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from faults_support import RunThread, committed, group_name, produce_each, wait_for
from restart_support import Broker, RestartableKafka
from support import Execution, assert_lane_order

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.control import offset_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 2
RECORDS = 2_000  # per partition
KEYS = 20
RESTART_WAIT_S = 180.0


class Executions:
    """Handler executions: (partition, offset, key, start, end), on one clock."""

    def __init__(self, gate: dict[int, int], restarted: threading.Event) -> None:
        self.lock = threading.Lock()
        self.runs: list[tuple[int, int, bytes | None, float, float]] = []
        self._gate = gate
        self._restarted = restarted

    async def handle(self, record: Record) -> None:
        while record.offset >= self._gate[record.partition] and not self._restarted.is_set():
            await asyncio.sleep(0.01)
        start = time.monotonic()
        await asyncio.sleep(0.001 + random.random() * 0.002)
        with self.lock:
            self.runs.append((record.partition, record.offset, record.key, start, time.monotonic()))

    def done(self) -> set[tuple[int, int]]:
        with self.lock:
            return {(p, o) for p, o, *_ in self.runs}


def test_a_broker_restart_mid_run_loses_nothing_and_redoes_only_uncommitted_records(
    own_kafka: RestartableKafka,
) -> None:
    broker = Broker(own_kafka.bootstrap_servers)
    topic = f"restart-{group_name('t')}"
    admin = AdminClient(broker.client_config())
    for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values():
        future.result(30)
    produce_each(
        broker,
        topic,
        (
            {"key": b"key-%d" % (i % KEYS), "value": b"v%d" % i, "partition": p}
            for p in range(PARTITIONS)
            for i in range(RECORDS)
        ),
    )
    want = {(p, o) for p in range(PARTITIONS) for o in range(RECORDS)}
    group = group_name("restart")
    restarted = threading.Event()
    executions = Executions({p: RECORDS // 2 for p in range(PARTITIONS)}, restarted)
    consumer = ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        handler=executions.handle,
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
    )
    run = RunThread(consumer, timeout=RESTART_WAIT_S * 2)
    try:
        # Both partitions held at their middle, and committed up to it.
        def held_and_committed() -> bool:
            positions = committed(broker, group, topic, PARTITIONS)
            return all(tp.offset == RECORDS // 2 for tp in positions.values())

        wait_for(held_and_committed, "commits up to the middle of each partition", alive=run.alive)
        before = committed(broker, group, topic, PARTITIONS)
        own_kafka.restart()
        restarted.set()
        wait_for(
            lambda: want <= executions.done(),
            "every record handled after the restart",
            timeout=RESTART_WAIT_S,
            alive=run.alive,
        )
        run.stop_and_join(RESTART_WAIT_S)
    finally:
        restarted.set()
        consumer.stop()
    assert run.error is None, run.error
    committed_before: set[tuple[int, int]] = set()
    for partition, tp in before.items():
        committed_before.update((partition, o) for o in range(tp.offset))
        above = offset_metadata.decode(tp.offset, tp.metadata) if tp.metadata else set()
        committed_before.update((partition, o) for o in above)

    runs = executions.runs
    counts = Counter((partition, offset) for partition, offset, *_ in runs)
    redone = [record for record, n in counts.items() if n > 1 and record in committed_before]
    assert not redone, f"records committed before the fault were redone: {redone[:5]}"
    assert_lane_order(
        (
            Execution((partition, key), offset, start, end)
            for partition, offset, key, start, end in runs
        ),
        redone=True,
    )
    final = committed(broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == dict.fromkeys(range(PARTITIONS), RECORDS)
