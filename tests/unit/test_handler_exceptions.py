"""A handler's BaseException never wedges a lane (issue 17, fault 3), no Kafka: items submitted
straight to the engines.

Any BaseException from the handler is a failed attempt, except SystemExit and KeyboardInterrupt:
reported STOPPED after one call. The coroutine runner tells a CancelledError the handler raised
from a cancel() of its own task (shutdown). A lane runner whose handler call lets something
escape still reports the item (FAILED) and goes on. The same in process workers (STOPPED
travels as code 3) and in batch mode (a STOPPED batch: its records STOPPED). The cases run on
every in-process engine in test_engines_contract.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Callable
from typing import Any

import pytest
from engine_support import WAIT_S, Reports, collect, engine_config, make_items

from pyrallel_consumer.codec import available_codecs, load_codec
from pyrallel_consumer.config import ConsumerConfig, RetryPolicy
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.baseline import BaselineEngine
from pyrallel_consumer.engines.batching import BatchingEngine
from pyrallel_consumer.engines.coroutine_lanes import CoroutineLaneRunner
from pyrallel_consumer.engines.lanes import ThreadLaneRunner
from pyrallel_consumer.engines.registry import engine_spec
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import OUTCOME_BY_CODE, Outcome, Report, WorkItem


class CustomBaseException(BaseException):
    """A BaseException of the user's own: `except Exception` does not catch it."""


# A record whose value names one of these makes the handlers below raise it.
EXCEPTIONS: dict[bytes, type[BaseException]] = {
    b"CancelledError": asyncio.CancelledError,
    b"GeneratorExit": GeneratorExit,
    b"CustomBaseException": CustomBaseException,
    b"SystemExit": SystemExit,
    b"KeyboardInterrupt": KeyboardInterrupt,
}
STOPS = {b"SystemExit", b"KeyboardInterrupt"}


# Module-level handlers: process workers import them.
def raise_named(record: Record) -> None:
    exc_type = EXCEPTIONS.get(record.value or b"")
    if exc_type is not None:
        raise exc_type(f"raised at offset {record.offset}")


async def raise_named_async(record: Record) -> None:
    await asyncio.sleep(0)
    raise_named(record)


def raise_named_batch(records: list[Record]) -> None:
    for record in records:
        raise_named(record)


async def raise_named_batch_async(records: list[Record]) -> None:
    await asyncio.sleep(0)
    raise_named_batch(records)


def config_for(engine: str, **options: Any) -> ConsumerConfig:
    options.setdefault("retries", 2)
    return engine_config(engine, **options)


# ---- process workers -------------------------------------------------------------------------


@pytest.mark.parametrize("handler", [raise_named, raise_named_async], ids=["threads", "coroutines"])
def test_process_workers_report_every_kind_and_go_on(
    handler: Callable[[Record], Any], engines: list[Engine]
) -> None:
    config = config_for("process", workers=1, worker_concurrency=4)
    engine = engine_spec("process").create(handler, config)
    engines.append(engine)
    engine.start()
    names = dict(zip(range(5, 10), EXCEPTIONS, strict=True))  # one per key
    items = make_items(50, keys=5, values=names)
    engine.submit(items)
    reports = collect(engine, len(items))
    for offset, name in names.items():
        done = reports[offset + 1]
        expected = (Outcome.STOPPED, 1) if name in STOPS else (Outcome.FAILED, 3)
        assert (done.outcome, done.attempts) == expected, name
        assert done.error is not None and f"{name.decode()}: raised at offset" in done.error
    others = [d for work_id, d in reports.items() if work_id - 1 not in names]
    assert all(d.outcome is Outcome.SUCCEEDED and d.attempts == 1 for d in others)
    assert engine.describe()["worker_restarts"] == 0  # nothing killed a worker


@pytest.mark.parametrize("name", available_codecs())
def test_stopped_travels_through_both_codecs(name: str) -> None:
    codec = load_codec(name)
    wire = codec.encode_results([(7, Outcome.STOPPED, 1, "SystemExit: 2")])
    (result,) = codec.decode_results(wire)
    assert OUTCOME_BY_CODE[result.outcome] is Outcome.STOPPED
    assert (result.work_id, result.attempts, result.error) == (7, 1, "SystemExit: 2")


# ---- batch mode ------------------------------------------------------------------------------

BATCH_ENGINES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "baseline": ("baseline", raise_named_batch),
    "async-threads": ("async", raise_named_batch),
    "async-coroutines": ("async", raise_named_batch_async),
    "process": ("process", raise_named_batch),
}


@pytest.mark.parametrize("kind", sorted(BATCH_ENGINES))
@pytest.mark.parametrize("name", [b"CustomBaseException", b"SystemExit"], ids=bytes.decode)
def test_batch_mode_stopped_batch_is_stopped_failed_batch_is_bisected(
    kind: str, name: bytes, engines: list[Engine]
) -> None:
    engine_name, handler = BATCH_ENGINES[kind]
    workers = {"workers": 1} if engine_name == "process" else {}
    config = config_for(
        engine_name, retries=1, batch_size=8, batch_max_wait_s=0.01, max_in_flight=64, **workers
    )
    engine: Engine = BatchingEngine(engine_spec(engine_name).create(handler, config), config)
    engines.append(engine)
    engine.start()
    items = make_items(40, keys=4, values={13: name})
    engine.submit(items)
    reports = collect(engine, len(items))
    bad = reports[14]
    assert bad.error is not None and f"{name.decode()}: raised at offset 13" in bad.error
    others = {work_id: d for work_id, d in reports.items() if work_id != 14}
    if name in STOPS:
        # Not bisected: the whole batch holding offset 13 is STOPPED after its one call.
        assert (bad.outcome, bad.attempts) == (Outcome.STOPPED, 1)
        stopped = [d for d in others.values() if d.outcome is Outcome.STOPPED]
        assert all(d.error == bad.error and d.attempts == 1 for d in stopped)
        assert all(d.outcome is Outcome.SUCCEEDED for d in others.values() if d not in stopped)
    else:
        assert bad.outcome is Outcome.FAILED and bad.attempts >= 2
        assert all(d.outcome is Outcome.SUCCEEDED for d in others.values())


# ---- the coroutine runner and cancellation ---------------------------------------------------


def one_lane(count: int) -> list[WorkItem[object]]:
    return [
        WorkItem(offset + 1, "lane", Record("t", 0, offset, b"k", b"v"), None, 0.0)
        for offset in range(count)
    ]


def run_one_lane(runner_type: Any, handler: Any, policy: RetryPolicy) -> dict[int, Report]:
    """The reports of one_lane(4) run by a runner of `runner_type` with one worker, by id; the
    runner is closed either way."""
    reports = Reports()
    runner = runner_type(handler, policy, 1, reports)
    try:
        runner.submit(one_lane(4))
        return reports.by_id(4)
    finally:
        runner.close(5.0)


async def await_a_cancelled_task() -> None:
    inner = asyncio.ensure_future(asyncio.sleep(60))
    inner.cancel()
    await inner  # CancelledError, while the runner's own task is not cancelled


def test_a_cancelled_task_of_the_handler_is_a_failed_attempt() -> None:
    calls: list[int] = []

    async def handle(record: Record) -> None:
        calls.append(record.offset)
        if record.offset == 1:
            await await_a_cancelled_task()

    policy = RetryPolicy(retries=2, backoff_initial_s=0.0)
    done = run_one_lane(CoroutineLaneRunner, handle, policy)
    assert (done[2].outcome, done[2].attempts) == (Outcome.FAILED, 3)
    assert done[2].error is not None and "CancelledError" in done[2].error
    assert [done[i].outcome for i in (1, 3, 4)] == [Outcome.SUCCEEDED] * 3
    assert calls == [0, 1, 1, 1, 2, 3]


def test_a_handler_cancelling_its_own_task_fails_its_record_only() -> None:
    """The cancel counts on the runner's task, so it propagates out of the retries; the runner
    reports the record FAILED, takes the cancel back, and the lane's next record (which raises
    a plain CancelledError of its own) is retried as usual."""

    async def handle(record: Record) -> None:
        if record.offset == 1:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()
            await asyncio.sleep(0)
        elif record.offset == 2:
            await await_a_cancelled_task()

    policy = RetryPolicy(retries=1, backoff_initial_s=0.0)
    done = run_one_lane(CoroutineLaneRunner, handle, policy)
    assert (done[2].outcome, done[2].attempts) == (Outcome.FAILED, 1)
    assert (done[3].outcome, done[3].attempts) == (Outcome.FAILED, 2)
    assert [done[i].outcome for i in (1, 4)] == [Outcome.SUCCEEDED] * 2


def test_close_abandons_a_stuck_coroutine_without_reporting_it() -> None:
    """close()'s own cancel is not the handler's failure: the record stays unreported, so it
    is never given to the failure policy (which could commit it). The record behind it in its
    lane never started: reported CANCELLED."""
    started = threading.Event()

    async def handle(record: Record) -> None:
        started.set()
        await asyncio.Event().wait()

    reports = Reports()
    runner = CoroutineLaneRunner(handle, RetryPolicy(retries=3, backoff_initial_s=0.0), 2, reports)
    items = one_lane(2)
    runner.submit(items)
    assert started.wait(WAIT_S)
    runner.close(0.1)
    assert [(r.id, r.outcome) for r in reports.done] == [(items[1].id, Outcome.CANCELLED)]


# ---- the safety net: nothing escaping a call ends a runner loop ------------------------------


class BrokenPolicy(RetryPolicy):
    """A retry policy whose delay raises: something other than the handler's exception
    escaping the call, as a bug in the library would."""

    def delay(self, attempt: int, rand: float) -> float:
        raise RuntimeError("the retry policy broke")


BROKEN = BrokenPolicy(retries=1, backoff_initial_s=0.0)


def fail_offset_1(record: Record) -> None:
    if record.offset == 1:
        raise ValueError("handler failed")


async def fail_offset_1_async(record: Record) -> None:
    fail_offset_1(record)


def assert_net_caught(done: dict[int, Report]) -> None:
    assert (done[2].outcome, done[2].attempts) == (Outcome.FAILED, 1)
    assert done[2].error is not None and "the retry policy broke" in done[2].error
    assert [done[i].outcome for i in (1, 3, 4)] == [Outcome.SUCCEEDED] * 3


@pytest.mark.parametrize("runner_type", [ThreadLaneRunner, CoroutineLaneRunner])
def test_lane_runners_report_what_escapes_and_go_on(runner_type: Any) -> None:
    handler = fail_offset_1 if runner_type is ThreadLaneRunner else fail_offset_1_async
    assert_net_caught(run_one_lane(runner_type, handler, BROKEN))


def test_baseline_reports_what_escapes_and_goes_on(engines: list[Engine]) -> None:
    config = dataclasses.replace(config_for("baseline"), retry=BROKEN)
    engine = BaselineEngine(fail_offset_1, config)
    engines.append(engine)
    engine.start()
    engine.submit(one_lane(4))
    assert_net_caught(collect(engine, 4))
