"""Exactly once across group membership changes, on Apache Kafka.

Two members (distinct `transactional_id`s) with a rebalance mid-run: a second member joins
after the first processed part of the input, takes over partitions, then leaves, and the first
takes them back. A zombie: a second instance with the *same* `transactional_id` fences the
first, whose run ends with `KafkaFatalError`, and the second finishes the input. Either way a
read_committed reader of the output topic sees each input's output exactly once, a key's
outputs in input order, and the group's committed offsets are the input's ends.

Both consumers run in threads of this process. Gates, not the machine's speed, make a member
hold records until the test has made the membership change it is about: a gated record waits,
in its handler, for an event the test sets.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eos_support import committed_outputs, verdict
from faults_support import Completions, RunThread
from outputs_support import OUT_TOPIC_ENV, output_of, transform_async
from support import committed, end_offsets, group_name, wait_for

from pyrallel_consumer import KafkaFatalError, Output, ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WAIT_S = 120.0


def gated(gate: dict[int, int], opened: threading.Event) -> Callable[[Record], Any]:
    """An async handler returning one output per record; records at or past `gate[partition]`
    wait for `opened` first."""

    async def handle(record: Record) -> Output:
        while record.offset >= gate[record.partition] and not opened.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.001 + random.random() * 0.002)
        return output_of(record)

    return handle


def member(
    broker: Any,
    topic: str,
    group: str,
    transactional_id: str,
    handler: Callable[[Record], Any],
    **options: Any,
) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group, **options.pop("kafka", {})),
        topics=[topic],
        handler=handler,
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
        outputs=True,
        transactional_id=transactional_id,
        **options,
    )


def committed_to(broker: Any, group: str, topic: str, ends: dict[int, int]) -> Callable[[], bool]:
    """Whether the group's committed offsets are `ends` (partition -> offset)."""

    def check() -> bool:
        positions = committed(broker, group, topic, len(ends))
        return {p: tp.offset for p, tp in positions.items()} == ends

    return check


def assigned(consumer: ParallelConsumer) -> int:
    """How many partitions `consumer` holds now."""
    return sum(1 for state in consumer.stats()["partitions"].values() if state["assigned"])


@contextmanager
def stopped_at_exit(*runs: RunThread) -> Iterator[None]:
    """Stop every run on the way out, so a failed wait leaves no member in the group."""
    try:
        yield
    finally:
        for run in runs:
            run.consumer.stop()
        for run in runs:
            run.join(WAIT_S)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_two_members_rebalance_mid_run_outputs_exactly_once(
    strategy: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records, partitions = 20_000, 8
    topic = new_topic(kafka_broker, partitions)
    out_topic = new_topic(kafka_broker, partitions, prefix="eos-out")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, records, keys=16)
    ends = end_offsets(produced)
    group = group_name("eos-members")
    revoked, leaving = threading.Event(), threading.Event()
    done_first, done_second = Completions(), Completions()

    def consumer(
        name: str, gate_at: float, opened: threading.Event, done: Completions
    ) -> ParallelConsumer:
        gate = {p: int(end * gate_at) for p, end in ends.items()}
        return member(
            kafka_broker,
            topic,
            group,
            f"{group}-{name}",
            gated(gate, opened),
            kafka={"partition.assignment.strategy": strategy},
            max_in_flight=200,
            on_complete=done,
        )

    first = RunThread(consumer("first", 0.5, revoked, done_first), timeout=WAIT_S * 3)
    second: RunThread | None = None
    with stopped_at_exit(first):
        wait_for(
            lambda: len(done_first) >= records * 0.15,
            "the first member to start",
            alive=first.alive,
            timeout=WAIT_S,
        )
        second = RunThread(consumer("second", 0.9, leaving, done_second), timeout=WAIT_S * 3)
        with stopped_at_exit(second):
            # The first member's gate opens once it lost partitions (the second joined).
            wait_for(
                lambda: assigned(first.consumer) < partitions,
                "the second member to join",
                alive=first.alive,
                timeout=WAIT_S,
            )
            revoked.set()
            wait_for(
                lambda: len(done_second) >= records * 0.1,
                "the second member to take over partitions",
                alive=second.alive,
                timeout=WAIT_S,
            )
            leaving.set()  # its held records may run while it leaves: a second rebalance
        wait_for(
            committed_to(kafka_broker, group, topic, ends),
            "every record committed",
            alive=first.alive,
            timeout=WAIT_S,
            every_s=0.5,
        )
    for run in (first, second):
        assert run is not None and run.error is None, run and run.error
    assert len(done_second) < records  # both members completed records

    result = verdict(
        ((r.partition, r.offset) for r in produced),
        committed_outputs(kafka_broker, out_topic, partitions),
    )
    result.assert_exactly_once()
    committed_by = [run.consumer.stats()["transactions_committed"] for run in (first, second)]
    assert min(committed_by) >= 1, committed_by


def test_a_zombie_is_fenced_with_kafka_fatal_error(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Instance A runs with transactional_id X; instance B starts in the same group with the
    same X. B's producer fences A's: A's next transactional step fails and its run ends with
    KafkaFatalError; B finishes the input."""
    records, partitions = 4_000, 4
    topic = new_topic(kafka_broker, partitions)
    out_topic = new_topic(kafka_broker, partitions, prefix="eos-out")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, records, keys=40)
    ends = end_offsets(produced)
    middle = {p: end // 2 for p, end in ends.items()}
    group = group_name("eos-zombie")
    shared_id = f"{group}-x"
    released = threading.Event()
    # A holds every record past the middle until B committed a transaction (B's producer
    # fenced A's by then), so A has outputs to write after it was fenced.
    zombie = RunThread(
        member(kafka_broker, topic, group, shared_id, gated(middle, released), revoke_grace_s=0.5),
        timeout=WAIT_S * 3,
    )
    with stopped_at_exit(zombie):
        wait_for(
            committed_to(kafka_broker, group, topic, middle),
            "A's commits up to the middle of each partition",
            alive=zombie.alive,
            timeout=WAIT_S,
            every_s=0.2,
        )
        newer = RunThread(
            member(kafka_broker, topic, group, shared_id, transform_async), timeout=WAIT_S * 3
        )
        with stopped_at_exit(newer):
            wait_for(
                lambda: newer.consumer.stats()["transactions_committed"] >= 1 or not zombie.alive(),
                "B's first transaction",
                alive=newer.alive,
                timeout=WAIT_S,
            )
            released.set()
            zombie.join(WAIT_S)  # A's run ends on its own: fenced
            wait_for(
                committed_to(kafka_broker, group, topic, ends),
                "B to commit every record",
                alive=newer.alive,
                timeout=WAIT_S,
                every_s=0.5,
            )
    error = zombie.error
    assert isinstance(error, KafkaFatalError), f"A's run ended with {error!r}"
    text = str(error)
    print(f"A's run ended with: {text}")
    assert "fenced" in text.lower() and "transactional_id" in text, text
    assert newer.error is None, newer.error

    result = verdict(
        ((r.partition, r.offset) for r in produced),
        committed_outputs(kafka_broker, out_topic, partitions),
    )
    result.assert_exactly_once()
