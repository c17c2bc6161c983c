"""Fault 5 of issue 10: what completed is committed before any wait that can outlive the session.

One partition, 10 records, async engine, session.timeout.ms=6000, drain_timeout_s=1,
revoke_grace_s=10; offset 0 takes 10 s. The consumer is stopped once offsets 1-9 completed
(the issue's run(timeout=2), gated on the event instead of the clock). A restart must not redo
the completed records: the committed position, plus the completed offsets its metadata carries,
covers every record that completed. Log lines must say what really happens: there is no "next
interval" after the consumer closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from faults_support import Completions, RunThread, committed, group_name, wait_for

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.control import offset_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 10
SLOW_OFFSET = 0
SLOW_S = 10.0  # the input: longer than the session and the drain timeout


async def slow_first(record: Record) -> None:
    if record.offset == SLOW_OFFSET:
        await asyncio.sleep(SLOW_S)


def test_completed_records_are_committed_before_the_shutdown_waits(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS)
    group = group_name("shutdown")
    completions = Completions()
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group, **{"session.timeout.ms": 6000}),
        topics=[topic],
        handler=slow_first,
        engine="async",
        ordering="key",
        drain_timeout_s=1,
        revoke_grace_s=10,
        commit_interval_s=1,
        on_complete=completions,
    )
    run = RunThread(consumer, timeout=120)
    others = set(range(RECORDS)) - {SLOW_OFFSET}
    wait_for(lambda: others <= completions.offsets(), "offsets 1-9 to complete", alive=run.alive)
    run.stop_and_join()
    assert run.error is None, run.error

    done = completions.offsets()
    tp = committed(kafka_broker, group, topic)[0]
    covered = set(range(max(tp.offset, 0)))
    if tp.offset >= 0 and tp.metadata:
        covered |= offset_metadata.decode(tp.offset, tp.metadata)
    redone = sorted(done - covered)
    assert not redone, (
        f"committed offset {tp.offset} (metadata {tp.metadata!r}): a restart would redo the "
        f"completed records {redone}"
    )
    misleading = [r.getMessage() for r in caplog.records if "next interval" in r.getMessage()]
    assert not misleading, misleading
