"""Backpressure (issue 10: fault 10 and a test gap).

- At capacity the consumer pauses its partitions and stops receiving: small max_in_flight and
  buffer, a handler held until the test releases it; records received stay within
  max_in_flight + backlog_size + one poll batch, then everything completes once released.
- Bounded memory must not cost throughput (fault 10): two partitions of 1 KB records over 50
  keys, a plain handler sleeping 10 ms on 32 threads, max_in_flight=100, backlog_size=1000 (10x).
  While records are waiting at the broker, the engine must never starve: a snapshot with an
  empty backlog and a part-empty in-flight window means the consumer stalled after a
  pause/resume. Such snapshots must stay rare (under 10%, the issue's 0.9 throughput target).
"""

from __future__ import annotations

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
    group_name,
    release,
    wait_for,
)

from pyrallel_consumer import ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def held(record: Record) -> None:
    block_until_released()


def sleep_10ms(record: Record) -> None:
    time.sleep(0.010)


def test_backpressure_pauses_at_capacity(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    records, max_in_flight, backlog_size, batch = 1_000, 5, 20, 10
    topic = new_topic(kafka_broker, 2)
    produce(kafka_broker, topic, records, keys=50)
    completions = Completions()
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("capacity")),
        topics=[topic],
        handler=held,
        engine="async",
        ordering="key",
        max_in_flight=max_in_flight,
        backlog_size=backlog_size,
        poll_batch_size=batch,
        on_complete=completions,
    )
    run = RunThread(consumer, max_records=records, timeout=180)
    bound = max_in_flight + backlog_size + batch
    try:
        wait_for(
            lambda: len(consumer.stats()["paused_partitions"]) == 2,
            "both partitions to pause at capacity",
            alive=run.alive,
            state=consumer.stats,
        )
        stats = consumer.stats()
        assert stats["in_flight"] == max_in_flight
        # Paused means no more records: watch the loop turn for a while.
        for _ in range(50):
            stats = consumer.stats()
            assert stats["received"] <= bound, stats
            assert len(stats["paused_partitions"]) == 2, stats
            time.sleep(0.02)
        assert len(completions) == 0
    finally:
        release(tmp_path)
    run.join(180)
    assert run.error is None, run.error
    assert run.result == records


def test_bounded_buffer_keeps_the_engine_fed(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., list[Any]]
) -> None:
    records, max_in_flight, backlog_size = 15_000, 100, 1_000
    topic = new_topic(kafka_broker, 2)
    produce(kafka_broker, topic, records, keys=50, value_size=1024)
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("hysteresis")),
        topics=[topic],
        handler=sleep_10ms,
        engine="async",
        ordering="key",
        concurrency=32,
        max_in_flight=max_in_flight,
        backlog_size=backlog_size,
    )
    samples: list[dict[str, Any]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            stats = consumer.stats()
            samples.append({k: stats[k] for k in ("received", "in_flight", "backlog")})
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    run = RunThread(consumer, max_records=records, timeout=240)
    sampler.start()
    run.join(300)
    stop.set()
    sampler.join(10)
    assert run.error is None, run.error
    assert run.result == records

    # From the first full window until the broker has nothing left beyond what is held.
    first_full = next(i for i, s in enumerate(samples) if s["in_flight"] >= max_in_flight)
    steady = [
        s for s in samples[first_full:] if s["received"] < records - max_in_flight - backlog_size
    ]
    assert len(steady) >= 20, f"only {len(steady)} samples in the steady state"
    starved = [s for s in steady if s["backlog"] == 0 and s["in_flight"] < max_in_flight]
    assert len(starved) <= 0.1 * len(steady), (
        f"the engine starved in {len(starved)} of {len(steady)} snapshots, e.g. {starved[:5]}"
    )
