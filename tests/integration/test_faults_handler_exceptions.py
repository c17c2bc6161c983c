"""Issue 17, fault 3, end to end on Apache Kafka: a handler's BaseException never wedges a lane.

The issue's input: 100 records over 4 keys in one partition, on_failure='skip', retries=1, the
handler raising on offset 5. Before, an `async def` handler raising asyncio.CancelledError (or
a plain one raising SystemExit) ended its lane's runner without a report: the run never
reached the end, returned after the drain with 76 of 100 completed and the partition committed
at 5. Now any BaseException is a failed attempt (retried, then skipped), and SystemExit or
KeyboardInterrupt stops the run cleanly with HandlerExit naming the record, which is not
committed. On every engine, process workers and batch mode included (the handlers are module
level, so process workers import them from this module).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest
from faults_support import committed_offset, group_name

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.errors import HandlerExit

pytestmark = pytest.mark.integration

RECORDS = 100
KEYS = 4
BAD_OFFSET = 5


class CustomBaseException(BaseException):
    """A BaseException of the user's own: `except Exception` does not catch it."""


async def cancelled_async(record: Record) -> None:
    await asyncio.sleep(0)
    if record.offset == BAD_OFFSET:
        raise asyncio.CancelledError(f"cancelled at offset {record.offset}")


def generator_exit(record: Record) -> None:
    if record.offset == BAD_OFFSET:
        raise GeneratorExit(f"closed at offset {record.offset}")


def custom_base_exception(record: Record) -> None:
    if record.offset == BAD_OFFSET:
        raise CustomBaseException(f"custom at offset {record.offset}")


async def cancelled_batch_async(records: list[Record]) -> None:
    for record in records:
        await cancelled_async(record)


def system_exit(record: Record) -> None:
    if record.offset == BAD_OFFSET:
        sys.exit(f"exit at offset {record.offset}")


async def keyboard_interrupt_async(record: Record) -> None:
    await asyncio.sleep(0)
    if record.offset == BAD_OFFSET:
        raise KeyboardInterrupt(f"interrupt at offset {record.offset}")


def system_exit_batch(records: list[Record]) -> None:
    for record in records:
        system_exit(record)


# (engine, handler, extra options)
Case = tuple[str, Callable[..., Any], dict[str, Any]]
BATCHES: dict[str, Any] = {"batch_size": 10, "batch_max_wait_s": 0.01}
FAILING: list[Case] = [
    ("async", cancelled_async, {}),
    ("process", cancelled_async, {"workers": 1}),
    ("baseline", generator_exit, {}),
    ("async", custom_base_exception, {}),
    ("process", generator_exit, {"workers": 1}),
    ("async", cancelled_batch_async, BATCHES),
]
STOPPING: list[Case] = [
    ("async", system_exit, {}),
    ("baseline", system_exit, {}),
    ("async", keyboard_interrupt_async, {}),
    ("process", system_exit, {"workers": 1}),
    ("async", system_exit_batch, BATCHES),
]


def case_id(case: Case) -> str:
    engine, handler, options = case
    return f"{engine}-{handler.__name__}" + ("-batches" if "batch_size" in options else "")


def consumer_for(
    broker: Any, topic: str, group: str, engine: str, handler: Any, options: dict[str, Any]
) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering="key",
        on_failure="skip",
        retries=1,
        retry_backoff_s=0.01,
        commit_interval_s=0.1,
        drain_timeout_s=5.0,  # a wedged lane ends the run sooner; not reached when it passes
        **options,
    )


@pytest.mark.parametrize("case", FAILING, ids=case_id)
def test_a_base_exception_is_a_failed_attempt_and_every_record_completes(
    case: Case, kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    engine, handler, options = case
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS, keys=KEYS, partition=0)
    group = group_name("base-exception")
    consumer = consumer_for(kafka_broker, topic, group, engine, handler, options)
    assert consumer.run(until_end=True, timeout=60) == RECORDS
    stats = consumer.stats()
    assert (stats["failed"], stats["skipped"], stats["in_flight"]) == (1, 1, 0)
    assert committed_offset(kafka_broker, group, topic) == RECORDS


@pytest.mark.parametrize("case", STOPPING, ids=case_id)
def test_system_exit_or_keyboard_interrupt_stops_the_run_with_handler_exit(
    case: Case, kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    engine, handler, options = case
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS, keys=KEYS, partition=0)
    group = group_name("handler-exit")
    consumer = consumer_for(kafka_broker, topic, group, engine, handler, options)
    with pytest.raises(HandlerExit) as raised:
        consumer.run(until_end=True, timeout=60)
    error = raised.value
    # In batch mode every record of the batch holding offset 5 is stopped, and the error names
    # one of them (which record the handler was at is the handler's own business): same lane.
    named = BAD_OFFSET if "batch_size" not in options else error.offset
    assert named % KEYS == BAD_OFFSET % KEYS
    assert (error.topic, error.partition, error.offset) == (topic, 0, named)
    expected = "KeyboardInterrupt" if "interrupt" in handler.__name__ else "SystemExit"
    assert error.exception == expected
    assert f"{topic}[0]@{named}" in str(error)
    assert f"at offset {BAD_OFFSET}" in error.error  # the handler's own message, in the traceback
    assert committed_offset(kafka_broker, group, topic) <= min(named, BAD_OFFSET)
    assert consumer.stats()["in_flight"] == 0
