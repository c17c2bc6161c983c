"""Batch mode through a SIGKILL and through rebalances, on Apache Kafka: nothing is lost.

SIGKILL: the consumer process dies with batches in flight; a second process with the same group
handles the rest. Every record is handled by one of them, and what was committed as done was
really handled. Rebalance: a second consumer joins and leaves while batches run (eager and
cooperative-sticky); every record completes, a key's calls never overlap, and the last
execution of each record of a key ran in offset order.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import (
    Execution,
    assert_lane_order,
    committed,
    end_offsets,
    handled,
    reaped,
    running,
    start_worker,
    wait_for,
    wait_handled,
)
from test_consumer_rebalance import Run, start

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.control import offset_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 4
KEYS = 100
WORKER = Path(__file__).with_name("batch_crash_worker.py")
WAIT_S = 180.0


def done_by_commits(broker: Any, group: str, topic: str) -> set[tuple[int, int]]:
    """(partition, offset) of the records the group's commits say are done: below each
    committed offset, and above it per the commit metadata."""
    done: set[tuple[int, int]] = set()
    for partition, tp in committed(broker, group, topic, PARTITIONS).items():
        if tp.offset >= 0:
            done.update((partition, o) for o in range(tp.offset))
            done.update((partition, o) for o in offset_metadata.decode(tp.offset, tp.metadata))
    return done


def test_sigkill_with_batches_in_flight_loses_nothing(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    want = {(r.partition, r.offset) for r in produced}
    group = f"batch-crash-{uuid.uuid4().hex[:8]}"
    first_file, second_file = tmp_path / "first.txt", tmp_path / "second.txt"

    with reaped(start_worker(WORKER, kafka_broker, topic, group, first_file)) as first:
        wait_handled(first, first_file, RECORDS * 0.3, WAIT_S)
        # The kill must land after a commit: with fast calls 30% can be handled within one
        # commit interval.
        wait_for(
            lambda: bool(done_by_commits(kafka_broker, group, topic)),
            "a commit",
            timeout=WAIT_S,
            alive=running(first),
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL
    first_run = handled(first_file)
    assert len(first_run) < RECORDS, "the first run finished before it was killed"

    done_before = done_by_commits(kafka_broker, group, topic)
    assert done_before, "the first run committed nothing before the kill"
    assert done_before <= set(first_run), "a record committed as done was never handled"

    with reaped(start_worker(WORKER, kafka_broker, topic, group, second_file)) as second:
        wait_for(
            lambda: want <= set(first_run) | set(handled(second_file)),
            "every record handled",
            timeout=WAIT_S,
            alive=running(second),
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(60) == 0
    second_run = handled(second_file)
    missing = want - set(first_run) - set(second_run)
    assert not missing, f"{len(missing)} records never handled, e.g. {sorted(missing)[:5]}"
    assert not done_before & set(second_run), "records committed as done were redone"
    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)


class BatchRun(Run):
    """Run's bookkeeping with a batch handler: one execution per record of a call."""

    def batch_handler(self, name: str) -> Callable[[list[Record]], Any]:
        async def handle(records: list[Record]) -> None:
            start = time.monotonic()
            await asyncio.sleep(0.01 + random.random() * 0.01)
            end = time.monotonic()
            with self.lock:
                self.executions.extend(
                    (name, r.partition, r.offset, r.key, start, end) for r in records
                )

        return handle


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_rebalance_with_batches_in_flight_loses_nothing(
    strategy: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    partitions = 8
    topic = new_topic(kafka_broker, partitions)
    produced = produce(kafka_broker, topic, RECORDS, keys=16)
    want = {(r.partition, r.offset) for r in produced}
    group = f"batch-rebalance-{uuid.uuid4().hex[:8]}"
    run = BatchRun()
    errors: list[BaseException] = []

    def consumer(name: str) -> ParallelConsumer:
        return ParallelConsumer(
            kafka_broker.consumer_config(group, **{"partition.assignment.strategy": strategy}),
            topics=[topic],
            handler=run.batch_handler(name),
            engine="async",
            ordering="key",
            batch_size=50,
            concurrency=2,  # about 5,000 records/s: the run outlasts both rebalances
            max_in_flight=200,
            commit_interval_s=0.2,
            on_complete=run.on_complete(name),
            on_assign=run.on_assign(name),
        )

    first, second = consumer("first"), consumer("second")
    first_thread = start(first, errors)
    try:
        run.wait(lambda: len(run.total()) >= RECORDS * 0.15, "the first consumer to start")
        second_thread = start(second, errors)
        try:
            run.wait(
                lambda: len(run.completed.get("second", ())) >= RECORDS * 0.1,
                "the second consumer to take over partitions",
            )
            assert len(run.total()) < RECORDS, "the run ended before the second consumer left"
        finally:
            second.stop()
            second_thread.join(WAIT_S)
        assert not second_thread.is_alive()
        run.wait(lambda: want <= run.total(), "every record to complete")
    finally:
        first.stop()
        first_thread.join(WAIT_S)
    assert not first_thread.is_alive()
    assert not errors, errors
    assert run.assignments["second"]
    missing = want - run.total()
    assert not missing, f"{len(missing)} records never completed, e.g. {sorted(missing)[:5]}"

    # Per key: one call at a time; each record's last execution in offset order.
    assert_lane_order(
        (
            Execution((partition, key), offset, begin, end, call=(name, begin))
            for name, partition, offset, key, begin, end in run.executions
        ),
        redone=True,
    )
