"""Fault 1 of issue 10: one stuck key must not stop every other key.

One partition, 400 records; every second record has key `slow`, the others seven other keys;
key order, max_in_flight=10. The handler blocks on offset 0 (a `slow` record) until the test
releases it. A stuck key may hold only a small, bounded share of the in-flight window: the 200
records of the other keys must all complete while offset 0 is still stuck.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    TRACE_ENV,
    Completions,
    RunThread,
    block_until_released,
    committed,
    committed_offset,
    group_name,
    produce_each,
    release,
    wait_for,
)
from support import Execution, assert_lane_order

from pyrallel_consumer import ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 400
SLOW_KEY = b"slow"
OTHER_KEYS = 7
STUCK_OFFSET = 0
# Generous: with per-key parallelism the other keys finish in well under a second.
OTHERS_DEADLINE_S = 30.0
WAIT_RUN_S = 180.0


def stuck_handler(record: Record) -> None:
    if record.offset == STUCK_OFFSET:
        block_until_released()


async def async_stuck_handler(record: Record) -> None:
    if record.offset == STUCK_OFFSET:
        await asyncio.to_thread(block_until_released)


def key_of(i: int) -> bytes:
    return SLOW_KEY if i % 2 == 0 else f"key-{(i // 2) % OTHER_KEYS}".encode()


CASES = [("async", async_stuck_handler), ("async", stuck_handler), ("process", stuck_handler)]


@pytest.mark.parametrize(("engine", "handler"), CASES, ids=[f"{e}-{h.__name__}" for e, h in CASES])
def test_a_stuck_key_does_not_stop_the_other_keys(
    engine: str,
    handler: Callable[[Record], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    topic = new_topic(kafka_broker, 1)
    produce_each(
        kafka_broker,
        topic,
        ({"key": key_of(i), "value": f"v{i}".encode(), "partition": 0} for i in range(RECORDS)),
    )
    others = {i for i in range(RECORDS) if key_of(i) != SLOW_KEY}
    group = group_name("stuck-key")
    completions = Completions()
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering="key",
        max_in_flight=10,
        commit_interval_s=0.2,
        on_complete=completions,
        **({"workers": 2, "worker_concurrency": 4} if engine == "process" else {}),
    )
    run = RunThread(consumer, max_records=RECORDS, timeout=WAIT_RUN_S)
    try:
        wait_for(
            lambda: others <= completions.offsets(),
            f"the {len(others)} records of the other keys to complete while key {SLOW_KEY!r} "
            "is stuck",
            timeout=OTHERS_DEADLINE_S,
            alive=run.alive,
            state=lambda: (
                f"{len(others & completions.offsets())} of {len(others)} completed; "
                f"in_flight={consumer.stats()['in_flight']} "
                f"backlog={consumer.stats()['backlog']}"
            ),
        )
        assert STUCK_OFFSET not in completions.offsets()
        stats = consumer.stats()
        # The records queued behind the stuck key wait in the backlog, not in flight.
        assert stats["in_flight"] < consumer.config.max_in_flight
    finally:
        release(tmp_path)
    run.join()
    assert run.error is None, run.error
    assert run.result == RECORDS
    assert completions.offsets() == set(range(RECORDS))
    assert committed_offset(kafka_broker, group, topic) == RECORDS


class Executions:
    """Handler executions of both consumers of the rebalance test, on one clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.runs: list[tuple[str, int, int, bytes | None, float, float]] = []

    def handler(self, name: str) -> Callable[[Record], None]:
        def handle(record: Record) -> None:
            start = time.monotonic()
            if name == "first" and (record.partition, record.offset) == (0, STUCK_OFFSET):
                block_until_released()
            with self.lock:
                self.runs.append(
                    (name, record.partition, record.offset, record.key, start, time.monotonic())
                )

        return handle


def test_a_rebalance_while_a_key_is_stuck_loses_nothing_and_keeps_key_order(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two partitions, the first consumer stuck on offset 0 of partition 0; a second consumer
    joins, and the eager (range) rebalance revokes both partitions of the first. The revoke
    waits for the stuck record (released while the revoke is under way), the records queued
    behind it are dropped from the backlog and handled by whoever owns the partition next, in
    key order, and nothing is lost."""
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    topic = new_topic(kafka_broker, 2)
    produce_each(
        kafka_broker,
        topic,
        (
            {"key": key_of(i), "value": f"v{i}".encode(), "partition": p}
            for p in (0, 1)
            for i in range(RECORDS)
        ),
    )
    want = {(p, o) for p in (0, 1) for o in range(RECORDS)}
    group = group_name("stuck-rebalance")
    executions = Executions()
    done: dict[str, Completions] = {"first": Completions(), "second": Completions()}

    def consumer(name: str) -> ParallelConsumer:
        return ParallelConsumer(
            kafka_broker.consumer_config(group),
            topics=[topic],
            handler=executions.handler(name),
            engine="async",
            ordering="key",
            max_in_flight=10,
            commit_interval_s=0.2,
            revoke_grace_s=60.0,  # longer than the test takes to release the stuck record
            on_complete=done[name],
            on_assign=lambda partitions: assignments.append((name, partitions)),
        )

    assignments: list[tuple[str, list[Any]]] = []

    def completed() -> set[tuple[int, int]]:
        return {(c.partition, c.offset) for d in done.values() for c in d.snapshot()}

    first = consumer("first")
    first_run = RunThread(first, timeout=WAIT_RUN_S)
    second_run: RunThread | None = None
    try:
        others = {(0, i) for i in range(RECORDS) if key_of(i) != SLOW_KEY}
        wait_for(
            lambda: others <= completed(),
            "the other keys of partition 0 to complete while the first consumer is stuck",
            alive=first_run.alive,
        )
        second = consumer("second")
        second_run = RunThread(second, timeout=WAIT_RUN_S)
        wait_for(
            lambda: len(first.stats()["partitions"]) < 2,
            "the first consumer's revoke",
            alive=first_run.alive,
        )
        release(tmp_path)  # the stuck record finishes within the revoke's grace
        wait_for(lambda: want <= completed(), "every record to complete", alive=first_run.alive)
    finally:
        release(tmp_path)
        if second_run is not None:
            second_run.stop_and_join()
        first_run.stop_and_join()
    assert first_run.error is None, first_run.error
    assert second_run.error is None, second_run.error
    # The first was assigned, revoked with the stuck record in flight, assigned again.
    assert [name for name, _ in assignments].count("first") >= 2
    assert any(name == "second" for name, _ in assignments)

    assert_lane_order(
        (
            Execution((partition, key), offset, start, end)
            for _, partition, offset, key, start, end in executions.runs
        ),
        redone=True,
    )
    stuck_runs = [r for r in executions.runs if (r[1], r[2]) == (0, STUCK_OFFSET)]
    assert [r[0] for r in stuck_runs] == ["first"]  # finished in the grace, committed, not redone
    ends = committed(kafka_broker, group, topic, partitions=2)
    assert {p: tp.offset for p, tp in ends.items()} == {0: RECORDS, 1: RECORDS}
