"""Producing a run's records: all before consuming (closed loop, a backlog) or at a fixed rate
while the consumer runs (open loop, in a child process so the producer does not share the GIL
with the consumer being measured).

Both produce the same records for the same plan: the keys of `--key-distribution`, values
carrying a sequence number. Delivery reports give each record's partition and offset, from which
the bench learns the busiest partition, where the stuck record landed, and (open loop) when each
record was sent. The bench counts what it produced instead of asking the broker for watermarks:
tansu answers ListOffsets wrongly, and counting is exact on every broker.
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
# The pacing loop's finest sleep: records due within it are sent together.
_TICK_S = 0.001


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

    def key_indices(self) -> list[int]:
        return KeyDistribution.parse(self.key_distribution).key_indices(
            self.num_messages, self.num_keys
        )

    @property
    def linger_ms(self) -> int:
        return BACKLOG_LINGER_MS if self.rate is None else OPEN_LOOP_LINGER_MS


@dataclass
class Delivered:
    """What the broker acknowledged, per record in production order (index = seq - seq_base).

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


def _producer(plan: ProducePlan) -> Producer:
    return Producer(
        client_config(
            plan.bootstrap_servers,
            **{
                "linger.ms": plan.linger_ms,
                "batch.num.messages": 10000,
                "acks": "all",
                "enable.idempotence": False,
                "compression.type": "none",
            },
        )
    )


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
                value=make_value(plan.seq_base + index),
                timestamp=int(time.time() * 1000),
                on_delivery=functools.partial(_on_delivery, delivered, failures, index),
            )
            return
        except BufferError:  # local queue full: let deliveries drain
            producer.poll(0.05)


def _empty(plan: ProducePlan) -> Delivered:
    n = plan.num_messages
    return Delivered(plan.key_indices(), [-1] * n, [-1] * n, [0.0] * n)


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
            f"producing to {plan.topic} failed: {delivered.count} of {plan.num_messages} "
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
    """Produce `plan.rate` records/s until every record was sent, then wait for deliveries."""
    assert plan.rate is not None
    producer = _producer(plan)
    delivered, failures = _empty(plan), list[str]()
    start = time.monotonic()
    sent = 0
    while sent < plan.num_messages:
        elapsed = time.monotonic() - start
        target = pacing.due(elapsed, plan.rate, plan.num_messages)
        if target > sent:
            delivered.behind_s = max(
                delivered.behind_s, elapsed - pacing.send_time(sent, plan.rate)
            )
        while sent < target:
            _produce_one(producer, plan, delivered, failures, sent)
            sent += 1
        producer.poll(0)
        if sent < plan.num_messages:
            # Sleep at least a tick: records due meanwhile go out together (at high rates one
            # sleep per record would cost more than the sends).
            wait = start + pacing.send_time(sent, plan.rate) - time.monotonic()
            time.sleep(max(wait, _TICK_S))
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
