"""The floor of an open-loop run's end-to-end latency: the same paced records (same rate,
warm-up, producer settings, partitions) consumed by a plain confluent-kafka consume loop with
the consumer's librdkafka settings, on a topic and group of their own (`-floor`). Send ->
receipt in that loop is what producing, the broker and fetching cost before any consumer does
work; the consumer's figure beside it shows what it adds.

The same loop warms a freshly started embedded broker before the first run (warm_up_broker):
a cold JVM answered produce requests seconds late in its first seconds on a 2-core machine.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer

from bench.measure import pacing, stats
from bench.run import topics
from bench.run.produce import Delivered, OpenLoopProducer, ProducePlan

FLOOR_SUFFIX = "-floor"
# A plain loop: take what is there without waiting (consume() with a timeout waits for a
# *full* batch), else block on poll() until the next record.
_BATCH = 500
_POLL_S = 0.1
# Broker warm-up: about 4 s of load took the cold broker's end-to-end p50 from over 1 s to a
# few ms here (bench/README.md, "Open-loop latency").
WARM_UP_RATE = 10_000.0
WARM_UP_S = 4.0
_WARM_UP_PARTITIONS = 4
_WARM_UP_KEYS = 100


@dataclass(frozen=True)
class Floor:
    """The plain loop's end-to-end latency (send -> receipt, ms) over its measured records."""

    e2e: stats.LatencySummary
    records: int  # measured records received
    error: str | None = None


def floor_latency(received: Mapping[tuple[int, int], float], delivered: Delivered) -> Floor:
    """Send -> receipt of each measured record (the warm-up ones left out) that was received;
    `received` maps (partition, offset) to the loop's time.monotonic() at receipt."""
    sent_at = delivered.measured().sent_at_by_record()
    latencies = [received[r] - t for r, t in sent_at.items() if r in received]
    return Floor(stats.summarize_latencies(latencies), len(latencies), delivered.error)


def consume_plain(
    plan: ProducePlan, consumer_config: Mapping[str, Any], timeout_s: float
) -> tuple[dict[tuple[int, int], float], Delivered]:
    """Produce `plan` at its rate in a child process (started at the first assignment) while a
    plain loop consumes it; (partition, offset) -> receipt time, and the producer's report."""
    producer = OpenLoopProducer(plan, timeout_s).start()
    consumer = Consumer(dict(consumer_config))
    received: dict[tuple[int, int], float] = {}
    try:
        consumer.subscribe(
            [plan.topic], on_assign=lambda _c, parts: producer.begin() if parts else None
        )
        deadline = time.monotonic() + timeout_s
        while len(received) < plan.total_messages and time.monotonic() < deadline:
            messages = consumer.consume(_BATCH, 0)
            if not messages:
                first = consumer.poll(_POLL_S)
                messages = [first] if first is not None else []
            now = time.monotonic()
            for message in messages:
                if message.error() is None:
                    received.setdefault((message.partition() or 0, message.offset() or 0), now)
            if producer.done() and producer.result(1.0).error:
                break
    finally:
        consumer.close()
        delivered = producer.result(timeout_s=5.0)
    return received, delivered


def measure_floor(
    plan: ProducePlan,
    kafka_config: Mapping[str, Any],
    partitions: int,
    timeout_s: float,
    delete_first: bool = True,
) -> Floor:
    """The floor of an open-loop run: its plan on `<topic>-floor`, group `<group>-floor`."""
    topic = plan.topic + FLOOR_SUFFIX
    config = {**kafka_config, "group.id": f"{kafka_config.get('group.id')}{FLOOR_SUFFIX}"}
    try:
        topics.reset_topic(
            plan.bootstrap_servers, topic, partitions, timeout_s, delete_first=delete_first
        )
        received, delivered = consume_plain(
            dataclasses.replace(plan, topic=topic), config, timeout_s
        )
    except Exception as exc:  # the floor is informative: never lose the run over it
        return Floor(stats.summarize_latencies([]), 0, f"{type(exc).__name__}: {exc}")
    floor = floor_latency(received, delivered)
    if floor.error is None and floor.records < plan.num_messages:
        missing = plan.num_messages - floor.records
        return dataclasses.replace(floor, error=f"{missing} records not received in time")
    return floor


def warm_up_broker(bootstrap_servers: str, timeout_s: float = 60.0) -> Floor:
    """Load a just-started broker for WARM_UP_S at WARM_UP_RATE with the open-loop producer
    and a plain loop, on a throwaway topic; the whole load counts as measured, so the result
    shows how cold the broker was."""
    name = f"pyrallel-bench-warm-up-{uuid.uuid4().hex[:8]}"
    records = pacing.warmup_records(WARM_UP_RATE, WARM_UP_S)
    plan = ProducePlan(bootstrap_servers, name, records, _WARM_UP_KEYS, rate=WARM_UP_RATE)
    topics.reset_topic(bootstrap_servers, name, _WARM_UP_PARTITIONS, timeout_s, delete_first=False)
    config = {
        "bootstrap.servers": bootstrap_servers,
        "group.id": name,
        "auto.offset.reset": "earliest",
    }
    received, delivered = consume_plain(plan, config, timeout_s)
    return floor_latency(received, delivered)


def warm_up(bootstrap_servers: str) -> dict[str, Any]:
    """warm_up_broker() with a line before and after; what it measured, for the metadata."""
    print(f"warming up the broker: {WARM_UP_S:g} s at {WARM_UP_RATE:,.0f} records/s", flush=True)
    try:
        floor = warm_up_broker(bootstrap_servers)
    except Exception as exc:  # a cold broker is slower, not wrong: go on
        floor = Floor(stats.summarize_latencies([]), 0, f"{type(exc).__name__}: {exc}")
    print(
        f"   end-to-end p50 {floor.e2e.p50_ms:,.1f} ms, p99 {floor.e2e.p99_ms:,.1f} ms "
        f"over {floor.records:,} records" + (f" ({floor.error})" if floor.error else ""),
        flush=True,
    )
    return {
        "seconds": WARM_UP_S,
        "rate_tps": WARM_UP_RATE,
        "records": floor.records,
        "e2e_p50_ms": floor.e2e.p50_ms,
        "e2e_p99_ms": floor.e2e.p99_ms,
        "error": floor.error,
    }
