"""Fault 1 of issue 10: one stuck key must not stop every other key.

One partition, 400 records; every second record has key `slow`, the others seven other keys;
key order, max_in_flight=10. The handler blocks on offset 0 (a `slow` record) until the test
releases it. A stuck key may hold only a small, bounded share of the in-flight window: the 200
records of the other keys must all complete while offset 0 is still stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    TRACE_ENV,
    Completions,
    RunThread,
    block_until_released,
    committed_offset,
    group_name,
    produce_each,
    release,
    wait_for,
)

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
