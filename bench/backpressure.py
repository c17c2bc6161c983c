"""Throughput with a bounded backlog next to the default one: does backpressure cost records/s?

    python -m bench.backpressure [--bootstrap-servers HOST:PORT] [--num-messages N]
        [--backlog-sizes 50000,1000]

Issue 10's input: two partitions of 1 KB records over 50 keys, engine=async with a plain
function sleeping 10 ms on 32 threads (bound 3,200 records/s), max_in_flight=100. Runs one
consumer per backlog size on the same topic (a fresh group each) and prints records/s and the
ratio to the first size; with backlog_size=1000 (10x max_in_flight) the partitions pause and
resume many times, so the ratio shows what each pause/resume costs. Also counts the stats()
snapshots (every 10 ms) in which the engine starved: an empty backlog and a part-empty
in-flight window while records still waited at the broker. Without --bootstrap-servers it
starts an embedded broker.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Sequence

from confluent_kafka import Producer

from bench.overhead import bootstrap_or_embedded
from bench.run import topics
from pyrallel_consumer import Completion, ParallelConsumer

PARTITIONS = 2
KEYS = 50
VALUE_BYTES = 1024
SLEEP_S = 0.010
THREADS = 32
MAX_IN_FLIGHT = 100
SAMPLE_EVERY_S = 0.01


def sleep_10ms(record: object) -> None:
    """The handler: a plain function, so it runs on the async engine's threads."""
    time.sleep(SLEEP_S)


def _produce(bootstrap: str, topic: str, count: int) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    value = b"x" * VALUE_BYTES
    for i in range(count):
        producer.produce(topic, key=b"key-%d" % (i % KEYS), value=value)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(60) != 0:
        raise RuntimeError(f"could not produce {count} records to {topic}")


def _run(bootstrap: str, topic: str, count: int, backlog_size: int) -> tuple[float, int, int]:
    """Records/s from the first record received to the last completion, and the starved and
    total steady-state snapshots."""
    span: list[float] = []

    def on_complete(c: Completion) -> None:
        if not span:
            span.append(c.received_at)
        span[1:] = [c.completed_at]

    consumer = ParallelConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"backpressure-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        },
        topics=[topic],
        handler=sleep_10ms,
        engine="async",
        ordering="key",
        concurrency=THREADS,
        max_in_flight=MAX_IN_FLIGHT,
        backlog_size=backlog_size,
        on_complete=on_complete,
    )
    snapshots: list[tuple[int, int, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(SAMPLE_EVERY_S):
            stats = consumer.stats()
            snapshots.append((stats["received"], stats["in_flight"], stats["backlog"]))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        completed = consumer.run(max_records=count, timeout=600)
    finally:
        done.set()
        sampler.join()
    if completed < count or len(span) < 2:
        raise RuntimeError(f"backlog_size={backlog_size}: only {completed} of {count} completed")
    # Steady state: a full window seen, and more records at the broker than the consumer holds.
    held = MAX_IN_FLIGHT + backlog_size
    first_full = next((i for i, s in enumerate(snapshots) if s[1] >= MAX_IN_FLIGHT), 0)
    steady = [s for s in snapshots[first_full:] if s[0] < count - held]
    starved = sum(1 for _, flying, backlog in steady if backlog == 0 and flying < MAX_IN_FLIGHT)
    return count / (span[1] - span[0]), starved, len(steady)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--num-messages", type=int, default=60_000)
    parser.add_argument(
        "--backlog-sizes",
        default="50000,1000",
        help="comma-separated backlog_size values, the first is the reference (%(default)s)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.backlog_sizes.split(",")]
    bound = THREADS / SLEEP_S
    with bootstrap_or_embedded(args.bootstrap_servers) as bootstrap:
        topic = f"backpressure-{uuid.uuid4().hex[:8]}"
        topics.reset_topic(bootstrap, topic, PARTITIONS, 60)
        _produce(bootstrap, topic, args.num_messages)
        reference: float | None = None
        for size in sizes:
            rate, starved, steady = _run(bootstrap, topic, args.num_messages, size)
            reference = reference or rate
            print(
                f"backlog_size={size:>7,}: {rate:>8,.0f} records/s ({rate / bound:.2f} of the "
                f"{bound:,.0f}/s bound, {rate / reference:.2f} of the first); starved in "
                f"{starved} of {steady} snapshots",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
