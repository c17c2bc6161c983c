"""Producing a run's records: all before consuming (closed loop, a backlog) or at a fixed rate
while the consumer runs (open loop, in a child process so the producer does not share the GIL
with the consumer being measured).

Both produce the same records for the same plan: the keys of `--key-distribution`, values
carrying a sequence number. An open loop may start with a warm-up (`--warmup-s`): records sent
at the same rate before the measured ones, left out of every figure (bench/run/phase.py).

Delivery reports give each record's partition and offset, from which the bench learns the
busiest partition, where the stuck record landed, and (open loop) when each record was sent.
The bench counts what it produced instead of asking the broker for watermarks: tansu answers
ListOffsets wrongly, and counting is exact on every broker.
"""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from bench.measure import pacing
from bench.run.cluster import BenchSetupError, client_config
from bench.workloads.keys import KeyDistribution, key_name
from bench.workloads.payload import make_value

BACKLOG_LINGER_MS = 5
# Open loop: a record waits up to linger.ms in the producer before it is sent; 1 ms keeps that
# small next to the service times measured, while still batching at high rates.
OPEN_LOOP_LINGER_MS = 1
# Every producer's settings but linger.ms (recorded in the results: client_settings()).
PRODUCER_SETTINGS: dict[str, Any] = {
    "batch.num.messages": 10000,
    "acks": "all",
    "enable.idempotence": False,
    "compression.type": "none",
}


@dataclass(frozen=True)
class ProducePlan:
    """Which records a run produces (picklable: the open-loop producer process gets it)."""

    bootstrap_servers: str
    topic: str
    num_messages: int
    num_keys: int
    key_distribution: str = "uniform"
    seq_base: int = 0  # first value sequence number; a second phase's records continue after
    rate: float | None = None  # records/s (open loop), None: as fast as possible
    warmup_messages: int = 0  # open loop: records sent first at the rate, then left out

    def key_indices(self, count: int | None = None) -> list[int]:
        """Key of each of the first `count` records (default: the measured ones)."""
        return KeyDistribution.parse(self.key_distribution).key_indices(
            self.num_messages if count is None else count, self.num_keys
        )

    @property
    def total_messages(self) -> int:
        """Records produced: the warm-up ones, then the measured ones."""
        return self.warmup_messages + self.num_messages

    def seq(self, index: int) -> int:
        """Value sequence number of the record produced `index`-th. The measured records are
        seq_base.. in order; the warm-up ones (produced first) are numbered after them, so
        that none of them is the stuck record (bench/workloads/stuck.py)."""
        if index < self.warmup_messages:
            return self.seq_base + self.num_messages + index
        return self.seq_base + index - self.warmup_messages

    @property
    def linger_ms(self) -> int:
        return BACKLOG_LINGER_MS if self.rate is None else OPEN_LOOP_LINGER_MS


@dataclass
class Delivered:
    """What the broker acknowledged, per record in production order: the `warmup` warm-up
    records first, then the measured ones (index - warmup = seq - seq_base).

    `sent_at`: time.monotonic() when produce() was called (the record's timestamp is the same
    instant on the wall clock); `behind_s`: how late the open-loop producer fell behind its
    schedule at worst.
    """

    key_indices: list[int]
    partitions: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)
    behind_s: float = 0.0
    error: str | None = None
    warmup: int = 0

    @property
    def count(self) -> int:
        return sum(1 for p in self.partitions if p >= 0)

    def partition_counts(self) -> Counter[int]:
        return Counter(p for p in self.partitions if p >= 0)

    def sent_at_by_record(self) -> dict[tuple[int, int], float]:
        """(partition, offset) -> send time of every delivered record."""
        return {
            (p, o): t
            for p, o, t in zip(self.partitions, self.offsets, self.sent_at, strict=True)
            if p >= 0
        }

    def warmup_records(self) -> set[tuple[int, int]]:
        """(partition, offset) of every delivered warm-up record."""
        w = self.warmup
        return {
            (p, o) for p, o in zip(self.partitions[:w], self.offsets[:w], strict=True) if p >= 0
        }

    def measured(self) -> Delivered:
        """The measured records only (the warm-up ones dropped)."""
        w = self.warmup
        return Delivered(
            self.key_indices[w:],
            self.partitions[w:],
            self.offsets[w:],
            self.sent_at[w:],
            self.behind_s,
            self.error,
        )


def producer_settings(plan: ProducePlan) -> dict[str, Any]:
    """librdkafka settings of the bench's producer for `plan` (bootstrap servers aside)."""
    return {"linger.ms": plan.linger_ms, **PRODUCER_SETTINGS}


def _producer(plan: ProducePlan) -> Producer:
    return Producer(client_config(plan.bootstrap_servers, **producer_settings(plan)))


def _on_delivery(
    delivered: Delivered, failures: list[str], index: int, err: KafkaError | None, msg: Message
) -> None:
    if err is not None:
        failures.append(str(err))
        return
    delivered.partitions[index] = msg.partition() or 0
    delivered.offsets[index] = msg.offset() or 0


def _produce_one(
    producer: Producer, plan: ProducePlan, delivered: Delivered, failures: list[str], index: int
) -> None:
    now = time.monotonic()
    delivered.sent_at[index] = now
    while True:
        try:
            producer.produce(
                plan.topic,
                key=key_name(delivered.key_indices[index]),
                value=make_value(plan.seq(index)),
                timestamp=int(time.time() * 1000),
                on_delivery=functools.partial(_on_delivery, delivered, failures, index),
            )
            return
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)


def _empty(plan: ProducePlan) -> Delivered:
    n = plan.total_messages
    keys = plan.key_indices(plan.warmup_messages) + plan.key_indices()
    return Delivered(keys, [-1] * n, [-1] * n, [0.0] * n, warmup=plan.warmup_messages)


def _finish(
    producer: Producer,
    plan: ProducePlan,
    delivered: Delivered,
    failures: list[str],
    timeout_s: float,
) -> Delivered:
    remaining = producer.flush(timeout_s)
    if failures or remaining:
        delivered.error = (
            f"producing to {plan.topic} failed: {delivered.count} of {plan.total_messages} "
            f"delivered, {remaining} still queued; first error: "
            f"{failures[0] if failures else 'timeout'}"
        )
    return delivered


def produce_backlog(plan: ProducePlan, timeout_s: float) -> Delivered:
    """Produce every record of `plan` now; BenchSetupError when some were not delivered."""
    producer = _producer(plan)
    delivered, failures = _empty(plan), list[str]()
    for index in range(plan.num_messages):
        _produce_one(producer, plan, delivered, failures, index)
        if index % 1000 == 0:
            producer.poll(0)
    _finish(producer, plan, delivered, failures, timeout_s)
    if delivered.error:
        raise BenchSetupError(delivered.error)
    return delivered


def produce_paced(plan: ProducePlan, timeout_s: float) -> Delivered:
    """Produce `plan.rate` records/s (the warm-up, then the measured records) until every
    record was sent, then wait for deliveries."""
    assert plan.rate is not None
    producer = _producer(plan)
    delivered, failures = _empty(plan), list[str]()
    delivered.behind_s = pacing.pace(
        plan.rate,
        plan.total_messages,
        functools.partial(_produce_one, producer, plan, delivered, failures),
        functools.partial(producer.poll, 0),
        time.monotonic,
        time.sleep,
    )
    return _finish(producer, plan, delivered, failures, timeout_s)


def _open_loop_main(plan: ProducePlan, start: Any, results: Any, timeout_s: float) -> None:
    """Body of the open-loop producer process: wait for the consumer, produce, report."""
    if not start.wait(timeout_s):
        results.send(Delivered(plan.key_indices(), error="the consumer never joined the group"))
        return
    try:
        results.send(produce_paced(plan, timeout_s))
    except Exception as exc:  # report it: the parent stops the consumer and records the error
        results.send(Delivered(plan.key_indices(), error=f"{type(exc).__name__}: {exc}"))


class OpenLoopProducer:
    """The paced producer in a child process: start() spawns it, begin() (the consumer has its
    partitions) starts the clock, result() waits for its delivery report."""

    def __init__(self, plan: ProducePlan, timeout_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._start = context.Event()
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(
            target=_open_loop_main,
            args=(plan, self._start, send, timeout_s),
            name="bench-open-loop-producer",
            daemon=True,
        )
        self._plan = plan
        self._lock = threading.Lock()  # the consumer's thread and a watcher may both ask
        self._result: Delivered | None = None

    def start(self) -> OpenLoopProducer:
        self._process.start()
        return self

    def begin(self) -> None:
        self._start.set()

    def done(self) -> bool:
        """Whether the producer has reported (its result is ready)."""
        return self._result is not None or bool(self._receive.poll())

    def result(self, timeout_s: float) -> Delivered:
        """The producer's report (waiting up to `timeout_s` for it), then the process is
        stopped. Safe from several threads: the report is received once and kept."""
        with self._lock:
            if self._result is None:
                if self._receive.poll(timeout_s):
                    try:
                        self._result = self._receive.recv()
                    except EOFError:
                        self._result = Delivered(
                            self._plan.key_indices(), error="the producer process died"
                        )
                else:
                    self._result = Delivered(
                        self._plan.key_indices(), error="the producer did not report"
                    )
                self.stop()
            return self._result

    def stop(self) -> None:
        self._start.set()  # a producer still waiting gives up on its own
        self._process.join(5)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
