"""Fault 8 of issue 10: stats() is a consistent snapshot, safe from any thread, before, during
and after a run, on every engine."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from faults_support import RunThread, group_name

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.topic_partition import TopicPartition

pytestmark = pytest.mark.integration

RECORDS = 2_000
PARTITIONS = 4


def noop(record: Record) -> None:
    """Nothing to do: the test is about stats()."""


def _consumer(broker: Any, topic: str, engine: str) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group_name("stats")),
        topics=[topic],
        handler=noop,
        engine=engine,
        commit_interval_s=0.05,
        max_in_flight=50,
        backlog_size=100,
        poll_batch_size=50,
        **({"workers": 1} if engine == "process" else {}),
    )


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_stats_before_during_and_after_a_run(
    engine: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS)
    consumer = _consumer(kafka_broker, topic, engine)

    before = consumer.stats()
    assert before["in_flight"] == 0 and before["completed"] == 0
    assert before["partitions"] == {}

    # During: another thread takes snapshots as fast as it can while the loop churns
    # (small windows, frequent commits and pauses); none may raise or be inconsistent.
    problems: list[str] = []
    snapshots = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal snapshots
        while not stop.is_set():
            try:
                stats = consumer.stats()
            except Exception as exc:  # the fault: state read while the control thread writes
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            snapshots += 1
            if stats["completed"] > stats["received"]:
                problems.append(f"completed {stats['completed']} > received {stats['received']}")
            for name, p in stats["partitions"].items():
                committed, position = p["committed"], p["position"]
                if committed is not None and position is not None and committed > position:
                    problems.append(f"{name}: committed beyond position: {p}")

    sampler = threading.Thread(target=sample, daemon=True)
    run = RunThread(consumer, max_records=RECORDS, timeout=120)
    sampler.start()
    run.join(150)
    stop.set()
    sampler.join(10)
    assert run.error is None, run.error
    assert run.result == RECORDS
    assert snapshots > 0
    assert not problems, f"{len(problems)} bad snapshots, e.g. {problems[:3]}"

    after = consumer.stats()
    ends: dict[int, int] = {}
    for r in produced:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    assert set(after["partitions"]) == {TopicPartition(topic, p) for p in range(PARTITIONS)}, after
    for p, end in ends.items():
        assert after["partitions"][TopicPartition(topic, p)]["committed"] == end
    assert after["completed"] == RECORDS and after["in_flight"] == 0
