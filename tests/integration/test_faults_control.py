"""Issue 17 on Apache Kafka: faults outside the handler end the run with a typed error.

- A static member fenced by another one with the same group.instance.id stops at once with
  KafkaFatalError, instead of handling records (twice) until its own timeout.
- A callback that raises ends the run with CallbackError naming it, the original as cause.
- run(max_records=N) hands at most N records to the handler, on every engine.
- A topic deleted mid-run beside a live one: the live topic keeps flowing and committing, and
  stats() never calls committed what the broker did not accept.
- A consumer that is built and never run holds no threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient
from faults_support import RunThread, committed, group_name, wait_for

from pyrallel_consumer import (
    CallbackError,
    Completion,
    KafkaFatalError,
    ParallelConsumer,
    Record,
)
from pyrallel_consumer.topic_partition import TopicPartition

pytestmark = pytest.mark.integration


class Handled:
    """Offsets a handler saw, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.offsets: list[int] = []

    def add(self, offset: int) -> None:
        with self._lock:
            self.offsets.append(offset)

    def snapshot(self) -> list[int]:
        with self._lock:
            return list(self.offsets)


def fenced_member(kafka_broker: Any, topic: str, group: str, handled: Handled) -> Any:
    async def handle(record: Record) -> None:
        handled.add(record.offset)
        await asyncio.sleep(0.05)

    return ParallelConsumer(
        kafka_broker.consumer_config(
            group, **{"group.instance.id": "same", "session.timeout.ms": 10000}
        ),
        topics=[topic],
        handler=handle,
        engine="async",
        commit_interval_s=0.5,
    )


def test_a_fenced_static_member_stops_at_once_with_kafka_fatal_error(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., list[Any]]
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 1000, keys=10)
    group = group_name("fenced")
    first_handled, second_handled = Handled(), Handled()
    first = RunThread(fenced_member(kafka_broker, topic, group, first_handled), timeout=60)
    wait_for(lambda: len(first_handled.snapshot()) >= 50, "the first member handling records")
    second = RunThread(
        fenced_member(kafka_broker, topic, group, second_handled), until_end=True, timeout=120
    )

    first.join(timeout=90)
    assert isinstance(first.error, KafkaFatalError), f"first member ended with {first.error!r}"
    assert "fenced" in str(first.error).lower() and "group.instance.id" in str(first.error)
    assert first.error.name == "FENCED_INSTANCE_ID"
    handled_at_stop = len(first_handled.snapshot())
    second.join(timeout=120)
    assert second.error is None, second.error
    # Nothing runs on after the fatal error, and the two members overlap little: the second
    # redoes what the first completed after its last accepted commit (one commit interval of
    # records) plus what was in flight, not the 640-1,080 seen when the first went on.
    assert len(first_handled.snapshot()) == handled_at_stop
    twice = set(first_handled.snapshot()) & set(second_handled.snapshot())
    assert len(twice) < 400, f"{len(twice)} records handled by both members"
    assert set(first_handled.snapshot()) | set(second_handled.snapshot()) == set(range(1000))


@pytest.mark.parametrize("callback", ["on_complete", "on_assign"])
def test_a_callback_that_raises_ends_the_run_with_callback_error(
    callback: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 200)
    calls = 0

    def raising(argument: Any) -> None:
        nonlocal calls
        calls += 1
        if callback == "on_assign" or calls == 50:
            raise ValueError(f"{callback} is broken")

    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("callback")),
        topics=[topic],
        handler=lambda record: None,
        engine="async",
        **{callback: raising},
    )
    with pytest.raises(CallbackError, match=f"{callback} raised ValueError") as raised:
        consumer.run(timeout=60)
    assert raised.value.callback == callback
    assert isinstance(raised.value.__cause__, ValueError)


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_max_records_hands_at_most_that_many_records_to_the_handler(
    engine: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 2000)
    completions: list[Completion] = []
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group_name("max-records")),
        topics=[topic],
        handler=handle_nothing,
        engine=engine,
        on_complete=completions.append,
    )
    assert consumer.run(max_records=10, timeout=60) == 10
    # on_complete sees every record that completed, which every record handed out does.
    assert len(completions) == 10
    assert consumer.stats()["received"] >= 10


def handle_nothing(record: Record) -> None:
    """Module level, so the process engine's workers can import it."""


def test_a_topic_deleted_mid_run_leaves_the_live_topic_flowing_and_stats_truthful(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    live, doomed = new_topic(kafka_broker, 1, prefix="live"), new_topic(kafka_broker, 1)
    produce(kafka_broker, live, 50)
    produce(kafka_broker, doomed, 50)
    group = group_name("deleted-topic")
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[live, doomed],
        handler=lambda record: None,
        commit_interval_s=0.2,
    )
    run = RunThread(consumer, timeout=120)

    def committed_of(topic: str) -> Any:
        return consumer.stats()["partitions"].get(TopicPartition(topic, 0), {}).get("committed")

    wait_for(lambda: committed_of(live) == 50 and committed_of(doomed) == 50, "both committed")
    admin = AdminClient(kafka_broker.client_config())
    admin.delete_topics([doomed])[doomed].result(timeout=30)
    produce(kafka_broker, live, 50)
    wait_for(
        lambda: committed_of(live) == 100,
        "the live topic committed after the deletion",
        alive=run.alive,
    )
    assert int(committed(kafka_broker, group, live)[0].offset) == 100
    run.stop_and_join()
    assert run.error is None, run.error


def test_a_consumer_built_and_never_run_holds_no_threads(kafka_broker: Any) -> None:
    before = threading.active_count()
    for engine in ("baseline", "async", "process"):
        ParallelConsumer(
            kafka_broker.consumer_config(group_name("idle")),
            topics=["never-read"],
            handler=handle_nothing,
            engine=engine,
            on_failure="dead_letter",
            dlq_topic="never-written",
        )
    assert threading.active_count() == before
