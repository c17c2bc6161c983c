"""Fault 6 of issue 10: no engine loses its group membership because a handler is slow.

max.poll.interval.ms=7000 and one record takes 9 s: the poll loop must keep serving the group
while it runs (the baseline included: still one record at a time). Expected: every record
handled exactly once, everything committed, no partition lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    TRACE_ENV,
    Completions,
    committed_offset,
    group_name,
    read_trace,
    trace,
)

from pyrallel_consumer import ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 10
SLOW_OFFSET = 3
SLOW_S = 9.0  # longer than max.poll.interval.ms
MAX_POLL_INTERVAL_MS = 7000


def slow_one(record: Record) -> None:
    trace("handled", str(record.offset))
    if record.offset == SLOW_OFFSET:
        time.sleep(SLOW_S)


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_a_slow_handler_keeps_the_group_membership(
    engine: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS)
    group = group_name("slow-handler")
    completions = Completions()
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(
            group, **{"max.poll.interval.ms": MAX_POLL_INTERVAL_MS, "session.timeout.ms": 6000}
        ),
        topics=[topic],
        handler=slow_one,
        engine=engine,
        ordering="partition",
        commit_interval_s=0.2,
        on_complete=completions,
        **({"workers": 1} if engine == "process" else {}),
    )
    completed = consumer.run(max_records=RECORDS, timeout=60)
    stats = consumer.stats()

    handled = [int(line) for line in read_trace(tmp_path, "handled")]
    twice = sorted({o for o in handled if handled.count(o) > 1})
    assert not twice, f"records handled more than once: {twice} (all: {handled})"
    assert completed == RECORDS
    assert completions.offsets() == set(range(RECORDS))
    assert stats["fenced"] == 0 and stats["cancelled"] == 0
    lost = [r.getMessage() for r in caplog.records if "lost" in r.getMessage()]
    assert not lost, lost
    assert committed_offset(kafka_broker, group, topic) == RECORDS
