"""Per-record cost of the coordinating loop: a zero-work handler next to a raw consume() loop.

    python -m bench.overhead [--bootstrap-servers HOST:PORT] [--num-messages N] [--paths P,...]
                             [--rounds R]

Produces N records over 100 keys into a fresh 8-partition topic, then reads them back with a
plain confluent-kafka consume() loop (the floor: no tracking, no ordering, no commits) and with
ParallelConsumer on each path, handler doing nothing. A path is `engine[/ordering][/batchN]`:
`async` (key order, one record per handler call), `async/unordered/batch500` (batch mode,
`batch_size=500`). Prints records/s per path and its ratio to the raw loop of the same run,
and the CPU time of the thread that runs the loop (the control thread; `time.thread_time()`
around the run, so the join included) per record, next to the raw loop's: on a shared or
noisy machine the raw loop's own rate moved by a third between runs (1.37-1.87M records/s on 2
cores), while CPU time per record does not count the time others took the cores.
With --rounds R the raw loop and every path run R times in turn over the same topic, and a
summary gives each one's medians: records/s, the share of the raw loop (each round's share of
its own raw loop, so a round on a slower machine moment compares with itself) and CPU time.
Without --bootstrap-servers it starts an embedded broker.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer

from bench.arg_parser import BenchArgumentParser
from bench.argtypes import positive_int
from bench.broker import resolve_default_kind, start_broker
from bench.run import topics
from bench.run.produce import ProducePlan, produce_backlog
from pyrallel_consumer import Completion, ParallelConsumer
from pyrallel_consumer.engines.registry import ENGINE_NAMES
from pyrallel_consumer.options import EngineName, Ordering

PARTITIONS = 8
KEYS = 100
ORDERINGS = ("key", "partition", "unordered")
# The record path per engine, and batch mode where its handler calls are cheapest.
DEFAULT_PATHS = (
    "baseline,async,process,baseline/key/batch500,async/key/batch500,async/unordered/batch500"
)


@dataclass(frozen=True)
class Path:
    """One way through the library: an engine, an ordering, and batch mode's batch size."""

    engine: str
    ordering: str = "key"
    batch_size: int | None = None

    @property
    def label(self) -> str:
        batch = f"/batch{self.batch_size}" if self.batch_size else ""
        return f"{self.engine}/{self.ordering}{batch}"


def parse_paths(text: str) -> list[Path]:
    """`async,async/unordered/batch500`: paths, checked before anything is produced."""
    paths = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        engine, *rest = item.split("/")
        ordering, batch_size = "key", None
        for part in rest:
            if part in ORDERINGS:
                ordering = part
            elif part.startswith("batch") and part[5:].isdigit() and int(part[5:]) > 0:
                batch_size = int(part[5:])
            else:
                raise argparse.ArgumentTypeError(
                    f"{item!r}: {part!r} is neither an ordering ({', '.join(ORDERINGS)}) nor "
                    "batchN (N > 0)"
                )
        if engine not in ENGINE_NAMES:
            raise argparse.ArgumentTypeError(
                f"{item!r}: expected an engine among {', '.join(ENGINE_NAMES)}"
            )
        paths.append(Path(engine, ordering, batch_size))
    if not paths:
        raise argparse.ArgumentTypeError(f"no path in {text!r}")
    return paths


def noop(record: object) -> None:
    """The zero-work handler (module level, so the process engine can pickle it); in batch
    mode it receives a list of records."""


async def noop_async(record: object) -> None:
    """The zero-work coroutine handler."""


@dataclass(frozen=True)
class Measured:
    """Records/s (first record received to the last done) and the loop thread's CPU time per
    record (us)."""

    rate: float
    cpu_us: float


def _raw_rate(bootstrap: str, topic: str, count: int) -> Measured:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # The library's default (pyrallel_consumer/config.py): the same fetch settings.
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    first: float | None = None
    cpu = time.thread_time()
    while seen < count:
        messages = consumer.consume(500, 0.1)
        if messages and first is None:
            first = time.monotonic()
        seen += len(messages)
    assert first is not None
    elapsed = time.monotonic() - first
    cpu = time.thread_time() - cpu
    consumer.close()
    return Measured(count / elapsed, 1e6 * cpu / count)


def _path_rate(bootstrap: str, topic: str, count: int, path: Path) -> Measured:
    """Records/s from the first record received to the last completion."""
    span: list[float] = []

    def on_complete(c: Completion) -> None:
        if not span:
            span.append(c.received_at)
        span[1:] = [c.completed_at]

    handler = noop_async if path.engine == "async" else noop
    consumer = ParallelConsumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"overhead-{path.engine}-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
        },
        topics=[topic],
        handler=handler,
        engine=cast(EngineName, path.engine),  # names checked by the bench's parser
        ordering=cast(Ordering, path.ordering),
        on_complete=on_complete,
        batch_size=path.batch_size,
    )
    cpu = time.thread_time()
    done = consumer.run(max_records=count, timeout=300)  # the control loop, on this thread
    cpu = time.thread_time() - cpu
    if done < count or len(span) < 2:
        raise RuntimeError(f"{path.label}: only {done} of {count} records completed")
    return Measured(count / (span[1] - span[0]), 1e6 * cpu / count)


@dataclass(frozen=True)
class Round:
    """One round: the raw loop, then each path (by label), over the same topic."""

    raw: Measured
    paths: dict[str, Measured]


@dataclass(frozen=True)
class Median:
    """A path's medians over the rounds: records/s, share of its round's raw loop, CPU us."""

    rate: float
    share: float
    cpu_us: float


def medians(rounds: Sequence[Round]) -> dict[str, Median]:
    """Per path label, in the rounds' order, and "raw" first (its share is 1): the medians of
    its rounds. Each share is taken within its round before the median is."""

    def of(pairs: list[tuple[Measured, Measured]]) -> Median:
        return Median(
            statistics.median(got.rate for got, _ in pairs),
            statistics.median(got.rate / raw.rate for got, raw in pairs),
            statistics.median(got.cpu_us for got, _ in pairs),
        )

    summary = {"raw": of([(r.raw, r.raw) for r in rounds])}
    for label in rounds[0].paths:
        summary[label] = of([(r.paths[label], r.raw) for r in rounds])
    return summary


def _raw_line(width: int, raw: Measured) -> str:
    return (
        f"{'raw consume()':>{width}}: {raw.rate:>12,.0f} records/s  "
        f"(loop thread CPU {raw.cpu_us:.2f} us/record)"
    )


def _path_line(width: int, label: str, got: Measured | Median, share: float, raw_cpu: float) -> str:
    return (
        f"{label:>{width}}: {got.rate:>12,.0f} records/s  ({share:.3f} of raw, "
        f"{1e6 / got.rate:.1f} us/record; control thread CPU {got.cpu_us:.2f} us/record, "
        f"{got.cpu_us / raw_cpu:.1f}x raw's)"
    )


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
        "--paths",
        type=parse_paths,
        default=parse_paths(DEFAULT_PATHS),
        help=f"comma-separated engine[/ordering][/batchN] to measure (default: {DEFAULT_PATHS})",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        help="run the raw loop and every path this many times in turn, then print the medians",
    )
    args = parser.parse_args(argv)
    width = max(len("raw consume()"), *(len(path.label) for path in args.paths))
    rounds: list[Round] = []
    with bootstrap_or_embedded(args.bootstrap_servers) as bootstrap:
        topic = f"overhead-{uuid.uuid4().hex[:8]}"
        topics.reset_topic(bootstrap, topic, PARTITIONS, 60)
        produce_backlog(ProducePlan(bootstrap, topic, args.num_messages, KEYS), 120)
        for number in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f"round {number} of {args.rounds}:")
            raw = _raw_rate(bootstrap, topic, args.num_messages)
            print(_raw_line(width, raw))
            measured: dict[str, Measured] = {}
            for path in args.paths:
                got = measured[path.label] = _path_rate(bootstrap, topic, args.num_messages, path)
                print(_path_line(width, path.label, got, got.rate / raw.rate, raw.cpu_us))
            rounds.append(Round(raw, measured))
    if args.rounds > 1:
        summary = medians(rounds)
        raw_median = summary.pop("raw")
        print(f"median of {args.rounds} rounds (each share taken within its round):")
        print(_raw_line(width, Measured(raw_median.rate, raw_median.cpu_us)))
        for label, median in summary.items():
            print(_path_line(width, label, median, median.share, raw_median.cpu_us))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
