"""Rebalance: a second consumer joins mid-run and later leaves, under eager (range) and
cooperative-sticky assignment. Nothing is missing and key order holds across the handovers.

Both consumers run in threads of this process, so their handler traces share one clock.
At-least-once allows a record in flight at a handover to run again; the checks allow that:
executions of one key never overlap (across consumers too), and the last execution of each
record of a key ran in offset order.

Gates, not the machine's speed, make the run outlast both rebalances: the first consumer holds
every record past the middle of its partition until it is revoked (the second has joined),
and the second holds every record past 90% of its partitions until it is told to leave.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from support import Execution, assert_lane_order

from pyrallel_consumer import Completion, ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 8
KEYS = 16
WAIT_S = 120.0


class Run:
    """Executions and completions of every consumer in the test."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (consumer, partition, offset, key, start, end)
        self.executions: list[tuple[str, int, int, bytes | None, float, float]] = []
        self.completed: dict[str, set[tuple[int, int]]] = {}
        self.assignments: dict[str, list[list[tuple[str, int]]]] = {}
        self.changed = threading.Condition(self.lock)

    def handler(
        self, name: str, gate: dict[int, int], opened: threading.Event
    ) -> Callable[[Record], Any]:
        """Records at or past `gate[partition]` wait for `opened` before their execution."""

        async def handle(record: Record) -> None:
            while record.offset >= gate[record.partition] and not opened.is_set():
                await asyncio.sleep(0.01)
            start = time.monotonic()
            await asyncio.sleep(0.003 + random.random() * 0.004)
            with self.lock:
                self.executions.append(
                    (name, record.partition, record.offset, record.key, start, time.monotonic())
                )

        return handle

    def on_complete(self, name: str) -> Callable[[Completion], None]:
        def record(completion: Completion) -> None:
            with self.changed:
                self.completed.setdefault(name, set()).add(
                    (completion.partition, completion.offset)
                )
                self.changed.notify_all()

        return record

    def on_assign(self, name: str) -> Callable[[list[tuple[str, int]]], None]:
        def record(partitions: list[tuple[str, int]]) -> None:
            with self.changed:
                self.assignments.setdefault(name, []).append(list(partitions))
                self.changed.notify_all()

        return record

    def total(self) -> set[tuple[int, int]]:
        return set().union(*self.completed.values()) if self.completed else set()

    def wait(self, condition: Callable[[], bool], what: str, *consumers: ParallelConsumer) -> None:
        with self.changed:
            if self.changed.wait_for(condition, WAIT_S):
                return
            done = {name: len(offsets) for name, offsets in self.completed.items()}
        states = [
            {k: c.stats()[k] for k in ("partitions", "fenced", "cancelled")} for c in consumers
        ]
        raise AssertionError(
            f"timed out waiting for {what}: completed {done}, assignments {self.assignments}, "
            f"stats {states}"
        )


def start(consumer: ParallelConsumer, errors: list[BaseException]) -> threading.Thread:
    def target() -> None:
        try:
            consumer.run(timeout=WAIT_S * 2)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_second_consumer_joins_and_leaves(
    strategy: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    want = {(r.partition, r.offset) for r in produced}
    group = f"rebalance-{uuid.uuid4().hex[:8]}"
    run = Run()
    errors: list[BaseException] = []

    ends: dict[int, int] = {}
    for r in produced:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    revoked, leaving = threading.Event(), threading.Event()

    def consumer(name: str, gate_at: float, opened: threading.Event) -> ParallelConsumer:
        gate = {p: int(end * gate_at) for p, end in ends.items()}
        return ParallelConsumer(
            kafka_broker.consumer_config(group, **{"partition.assignment.strategy": strategy}),
            topics=[topic],
            handler=run.handler(name, gate, opened),
            engine="async",
            ordering="key",
            commit_interval_s=0.2,
            max_in_flight=200,
            on_complete=run.on_complete(name),
            on_assign=run.on_assign(name),
        )

    first, second = consumer("first", 0.5, revoked), consumer("second", 0.9, leaving)
    first_thread = start(first, errors)
    try:
        run.wait(lambda: len(run.total()) >= RECORDS * 0.15, "the first consumer to start")
        second_thread = start(second, errors)
        try:
            # Open the first consumer's gate while its revoke waits for in-flight work, so
            # the held records finish within revoke_grace_s (no execution outlives it).
            deadline = time.monotonic() + WAIT_S
            while len(first.stats()["partitions"]) == PARTITIONS:
                assert time.monotonic() < deadline, "the second consumer never joined"
                time.sleep(0.02)
            revoked.set()
            run.wait(
                lambda: len(run.completed.get("second", ())) >= RECORDS * 0.1,
                "the second consumer to take over partitions",
            )
            assert len(run.total()) < RECORDS  # held by the second consumer's gate
        finally:
            leaving.set()
            revoked.set()
            second.stop()
            second_thread.join(WAIT_S)
        assert not second_thread.is_alive()
        run.wait(lambda: want <= run.total(), "every record to complete")
    finally:
        first.stop()
        first_thread.join(WAIT_S)
    assert not first_thread.is_alive()
    assert not errors, errors

    # Both consumers owned partitions, and the first got the second's back when it left.
    assert run.assignments["second"]
    assert len(run.assignments["first"]) >= 2
    missing = want - run.total()
    assert not missing, f"{len(missing)} records never completed, e.g. {sorted(missing)[:5]}"

    executions = [
        Execution((partition, key), offset, begin, end)
        for _, partition, offset, key, begin, end in run.executions
    ]
    assert_lane_order(executions, redone=True)
    redone = len(executions) - len({(e.lane, e.offset) for e in executions})
    assert redone < RECORDS * 0.1, f"{redone} records redone"

    check = Consumer(kafka_broker.consumer_config(group))
    try:
        committed = check.committed(
            [TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=30.0
        )
    finally:
        check.close()
    assert {tp.partition: tp.offset for tp in committed} == ends


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_work_outliving_revoke_grace_is_fenced(
    strategy: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    """A record still running when revoke_grace_s ends does not hold the rebalance up; its late
    completion is fenced off (not committed by the old owner) and the new owner redoes it."""
    topic = new_topic(kafka_broker, 2)
    produced = produce(kafka_broker, topic, 2_000, keys=20)
    want = {(r.partition, r.offset) for r in produced}
    stuck_records = {(p, min(r.offset for r in produced if r.partition == p)) for p in (0, 1)}
    group = f"fence-{uuid.uuid4().hex[:8]}"
    release = threading.Event()
    started_stuck = threading.Semaphore(0)
    run = Run()
    errors: list[BaseException] = []

    async def first_handler(record: Record) -> None:
        if (record.partition, record.offset) in stuck_records and not release.is_set():
            started_stuck.release()
            while not release.is_set():
                await asyncio.sleep(0.01)

    async def second_handler(record: Record) -> None:
        await asyncio.sleep(0)

    def consumer(name: str, handler: Callable[[Record], Any]) -> ParallelConsumer:
        return ParallelConsumer(
            kafka_broker.consumer_config(group, **{"partition.assignment.strategy": strategy}),
            topics=[topic],
            handler=handler,
            engine="async",
            ordering="key",
            commit_interval_s=0.2,
            revoke_grace_s=0.5,
            on_complete=run.on_complete(name),
            on_assign=run.on_assign(name),
        )

    first = consumer("first", first_handler)
    second = consumer("second", second_handler)
    first_thread = start(first, errors)
    second_thread: threading.Thread | None = None
    try:
        for _ in stuck_records:  # both partitions have a record stuck in the first consumer
            assert started_stuck.acquire(timeout=WAIT_S)
        second_thread = start(second, errors)

        # The second consumer finishes the partition it took over, stuck record included,
        # while the first consumer's execution of that record is still blocked.
        def taken_over_and_finished() -> bool:
            done, by_second = run.total(), run.completed.get("second", set())
            return any(
                (partition, offset) in by_second and {r for r in want if r[0] == partition} <= done
                for partition, offset in stuck_records
            )

        run.wait(
            taken_over_and_finished,
            "the second consumer to finish a partition taken over",
            first,
            second,
        )
        assert first.stats()["fenced"] == 0  # the stuck executions have not finished yet
        release.set()
        run.wait(lambda: want <= run.total(), "every record to complete")
    finally:
        release.set()
        first.stop()
        second.stop()
        first_thread.join(WAIT_S)
        if second_thread is not None:
            second_thread.join(WAIT_S)
    assert not errors, errors
    # The released executions reported after their partitions were revoked: fenced. (Read
    # after run() returned: see the report on stats() blocking while two consumers poll.)
    assert first.stats()["fenced"] >= 1
    # A fenced completion is never reported as completed by the consumer that lost the record.
    moved = stuck_records & run.completed.get("second", set())
    assert moved
    assert not moved & run.completed.get("first", set())

    check = Consumer(kafka_broker.consumer_config(group))
    try:
        committed = check.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=30.0)
    finally:
        check.close()
    ends: dict[int, int] = {}
    for r in produced:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    assert {tp.partition: tp.offset for tp in committed} == ends
