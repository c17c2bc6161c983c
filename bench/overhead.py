"""Per-record cost of the coordinating loop: a zero-work handler next to a raw consume() loop.

    python -m bench.overhead [--bootstrap-servers HOST:PORT] [--num-messages N]

Produces N records over 100 keys into a fresh 8-partition topic, then reads them back with a
plain confluent-kafka consume() loop (the floor: no tracking, no ordering, no commits) and with
ParallelConsumer on each engine, ordering=key, handler doing nothing. Prints records/s and the
ratio to the raw loop. Without --bootstrap-servers it starts an embedded broker.
"""

from __future__ import annotations

import argparse
import contextlib
import time
import uuid
from collections.abc import Iterator, Sequence

from confluent_kafka import Consumer

from bench.arg_parser import BenchArgumentParser
from bench.argtypes import positive_int
from bench.broker import resolve_default_kind, start_broker
from bench.run import topics
from bench.run.produce import ProducePlan, produce_backlog
from pyrallel_consumer import Completion, ParallelConsumer
from pyrallel_consumer.engines.registry import ENGINE_NAMES

PARTITIONS = 8
KEYS = 100


def noop(record: object) -> None:
    """The zero-work handler (module level, so the process engine can pickle it)."""


async def noop_async(record: object) -> None:
    """The zero-work coroutine handler."""


def _raw_rate(bootstrap: str, topic: str, count: int) -> float:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    first: float | None = None
    while seen < count:
        messages = consumer.consume(500, 0.1)
        if messages and first is None:
            first = time.monotonic()
        seen += len(messages)
    assert first is not None
    elapsed = time.monotonic() - first
    consumer.close()
    return count / elapsed


def _engine_rate(bootstrap: str, topic: str, count: int, engine: str) -> float:
    """Records/s from the first record received to the last completion."""
    span: list[float] = []

    def on_complete(c: Completion) -> None:
        if not span:
            span.append(c.received_at)
        span[1:] = [c.completed_at]

    handler = noop_async if engine == "async" else noop
    consumer = ParallelConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"overhead-{engine}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        },
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering="key",
        on_complete=on_complete,
    )
    done = consumer.run(max_records=count, timeout=300)
    if done < count or len(span) < 2:
        raise RuntimeError(f"{engine}: only {done} of {count} records completed")
    return count / (span[1] - span[0])


def _engine_list(text: str) -> list[str]:
    """`baseline,async`: known engine names, checked before anything is produced."""
    engines = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in engines if name not in ENGINE_NAMES]
    if unknown or not engines:
        raise argparse.ArgumentTypeError(
            f"expected engines among {', '.join(ENGINE_NAMES)}, got {text!r}"
        )
    return engines


@contextlib.contextmanager
def bootstrap_or_embedded(bootstrap: str | None) -> Iterator[str]:
    """The given bootstrap servers, or an embedded broker's for the duration."""
    if bootstrap:
        yield bootstrap
        return
    with start_broker(resolve_default_kind()) as broker:
        print(f"embedded broker: {broker.version} at {broker.bootstrap_servers}")
        yield broker.bootstrap_servers


def main(argv: Sequence[str] | None = None) -> int:
    parser = BenchArgumentParser(
        prog="python -m bench.overhead", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--bootstrap-servers", default=None, help="Kafka cluster (default: an embedded broker)"
    )
    parser.add_argument(
        "--num-messages", type=positive_int, default=100_000, help="records produced and read"
    )
    parser.add_argument(
        "--engines",
        type=_engine_list,
        default=list(ENGINE_NAMES),
        help="comma-separated engines to measure (default: all)",
    )
    args = parser.parse_args(argv)
    with bootstrap_or_embedded(args.bootstrap_servers) as bootstrap:
        topic = f"overhead-{uuid.uuid4().hex[:8]}"
        topics.reset_topic(bootstrap, topic, PARTITIONS, 60)
        produce_backlog(ProducePlan(bootstrap, topic, args.num_messages, KEYS), 120)
        raw = _raw_rate(bootstrap, topic, args.num_messages)
        print(f"{'raw consume()':>14}: {raw:>12,.0f} records/s")
        for engine in args.engines:
            rate = _engine_rate(bootstrap, topic, args.num_messages, engine)
            per_record_us = 1e6 / rate
            print(
                f"{engine:>14}: {rate:>12,.0f} records/s  ({rate / raw:.2f} of raw, "
                f"{per_record_us:.1f} us/record)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
