"""The engine contract, run against every in-process engine with a fake handler (no Kafka).

Lanes: items sharing a lane run one at a time in submission order; retries happen inside the
lane; a handler failing every attempt is reported FAILED after retries + 1 attempts with the
exception in the error text; cancelled items are reported CANCELLED. Any BaseException from
the handler is a failed attempt, except SystemExit and KeyboardInterrupt: reported STOPPED at
once; either way the lane goes on.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from engine_support import WAIT_S, collect, engine_config, make_items

from pyrallel_consumer.engines.asyncio_engine import AsyncEngine
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.baseline import BaselineEngine
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


class Recorder:
    """What the fake handler saw: calls in order, and overlap per lane."""

    def __init__(
        self,
        fail: Callable[[Record, int], bool] | None = None,
        raises: Callable[[Record, int], BaseException | None] | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[int, int]] = []  # (offset, attempt)
        self.attempts: dict[int, int] = {}
        self.running: dict[Any, int] = {}
        self.overlaps: list[int] = []
        self.fail = fail or (lambda record, attempt: False)
        self.raises = raises or (lambda record, attempt: None)

    def begin(self, record: Record) -> int:
        with self.lock:
            attempt = self.attempts[record.offset] = self.attempts.get(record.offset, 0) + 1
            self.calls.append((record.offset, attempt))
            lane = record.key
            self.running[lane] = self.running.get(lane, 0) + 1
            if self.running[lane] > 1:
                self.overlaps.append(record.offset)
            return attempt

    def end(self, record: Record, attempt: int) -> None:
        with self.lock:
            self.running[record.key] -= 1
        if self.fail(record, attempt):
            raise RuntimeError(f"boom at offset {record.offset} attempt {attempt}")
        exc = self.raises(record, attempt)
        if exc is not None:
            raise exc


def sync_handler(recorder: Recorder) -> Callable[[Record], None]:
    def handle(record: Record) -> None:
        attempt = recorder.begin(record)
        time.sleep(random.random() * 0.001)
        recorder.end(record, attempt)

    return handle


def async_handler(recorder: Recorder) -> Callable[[Record], Any]:
    async def handle(record: Record) -> None:
        attempt = recorder.begin(record)
        await asyncio.sleep(random.random() * 0.001)
        recorder.end(record, attempt)

    return handle


ENGINES = {
    "baseline": (BaselineEngine, sync_handler),
    "async-coroutines": (AsyncEngine, async_handler),
    "async-threads": (AsyncEngine, sync_handler),
}


@pytest.fixture(params=sorted(ENGINES))
def engine_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_engine(kind: str, recorder: Recorder, engines: list[Engine], **options: Any) -> Engine:
    """A started engine of `kind` whose handler tells `recorder`; two retries unless
    `options` say otherwise."""
    engine_class, make_handler = ENGINES[kind]
    options.setdefault("retries", 2)
    engine = engine_class(make_handler(recorder), engine_config(engine_class.name, **options))
    engine.start()
    engines.append(engine)
    return engine


def test_lane_order_preserved(engine_kind: str, engines: list[Engine]) -> None:
    recorder = Recorder()
    engine = make_engine(engine_kind, recorder, engines)
    items = make_items(600, keys=10)
    for start in range(0, len(items), 64):
        engine.submit(items[start : start + 64])
    reports = collect(engine, len(items))
    assert all(
        d.outcome == Outcome.SUCCEEDED and d.attempts == 1 and d.error is None
        for d in reports.values()
    )
    assert recorder.overlaps == []
    per_key: dict[int, list[int]] = {}
    for offset, _ in recorder.calls:
        per_key.setdefault(offset % 10, []).append(offset)
    for key, offsets in per_key.items():
        assert offsets == sorted(offsets), f"key-{key} out of order"
        assert len(offsets) == 60


def test_unordered_runs_everything(engine_kind: str, engines: list[Engine]) -> None:
    recorder = Recorder()
    engine = make_engine(engine_kind, recorder, engines, ordering="unordered")
    items = make_items(300, keys=3, ordering="unordered")
    engine.submit(items)
    reports = collect(engine, len(items))
    assert {d.outcome for d in reports.values()} == {Outcome.SUCCEEDED}
    assert sorted(o for o, _ in recorder.calls) == list(range(300))


@pytest.mark.parametrize("backoff_s", [0.0, 0.02])
def test_retries_then_failed_with_error_text(
    engine_kind: str, engines: list[Engine], backoff_s: float
) -> None:
    # Offset 3 always fails; offset 5 fails twice then succeeds. With a backoff, the thread
    # runner's retries go through its retry queue (backoff 0 too, due at once).
    recorder = Recorder(
        fail=lambda record, attempt: record.offset == 3 or (record.offset == 5 and attempt <= 2)
    )
    engine = make_engine(engine_kind, recorder, engines, retries=2, retry_backoff_s=backoff_s)
    items = make_items(20, keys=2)  # offsets 3, 5, 7, ... share key-1
    engine.submit(items)
    reports = collect(engine, len(items))
    failed = reports[items[3].id]
    assert failed.outcome == Outcome.FAILED
    assert failed.attempts == 3  # retries + 1
    assert failed.error is not None
    assert "RuntimeError" in failed.error
    assert "boom at offset 3 attempt 3" in failed.error
    recovered = reports[items[5].id]
    assert (recovered.outcome, recovered.attempts, recovered.error) == (Outcome.SUCCEEDED, 3, None)
    others = [d for i, d in reports.items() if i not in (items[3].id, items[5].id)]
    assert all(d.outcome == Outcome.SUCCEEDED and d.attempts == 1 for d in others)
    # Retries stay inside the lane: key-1 ran 3, 3, 3, 5, 5, 5, 7, ... in that order.
    key1 = [offset for offset, _ in recorder.calls if offset % 2 == 1]
    assert key1 == [1, 3, 3, 3, 5, 5, 5, *range(7, 20, 2)]


def test_zero_retries_fails_after_one_attempt(engine_kind: str, engines: list[Engine]) -> None:
    recorder = Recorder(fail=lambda record, attempt: True)
    engine = make_engine(engine_kind, recorder, engines, retries=0)
    items = make_items(3, keys=3)
    engine.submit(items)
    reports = collect(engine, 3)
    assert all(d.outcome == Outcome.FAILED and d.attempts == 1 for d in reports.values())


def test_cancelled_items_reported_cancelled(engine_kind: str, engines: list[Engine]) -> None:
    recorder = Recorder()
    engine = make_engine(engine_kind, recorder, engines)
    items = make_items(10, keys=2)
    for item in items[::3]:
        item.cancelled = True
    engine.submit(items)
    reports = collect(engine, len(items))
    for item in items:
        outcome = reports[item.id].outcome
        assert outcome == (Outcome.CANCELLED if item.cancelled else Outcome.SUCCEEDED)
    called = sorted(offset for offset, _ in recorder.calls)
    assert called == [i.record.offset for i in items if not i.cancelled]


def test_reports_never_blocks_and_wait_returns(engine_kind: str, engines: list[Engine]) -> None:
    engine = make_engine(engine_kind, Recorder(), engines)
    assert engine.reports() == []
    engine.wait(0.01)  # nothing submitted: returns after the timeout
    assert engine.describe()["engine"] == ENGINES[engine_kind][0].name


def test_a_lane_waiting_for_a_retry_holds_no_thread(engines: list[Engine]) -> None:
    """The async engine's thread pool (one thread here) runs other lanes while a record waits
    out an hour of backoff; close() abandons that record (never reported, so never committed)
    and reports the records behind it in its lane CANCELLED (never started).
    (The baseline engine sleeps inline by design, one record at a time; the coroutine runner
    awaits the backoff on one of its coroutines.)"""
    recorder = Recorder(fail=lambda record, attempt: record.offset == 0)
    engine = make_engine(
        "async-threads",
        recorder,
        engines,
        concurrency=1,
        retries=1,
        retry_backoff_s=3600.0,
        retry_backoff_max_s=3600.0,
    )
    items = make_items(10, keys=2)  # key-0: offsets 0, 2, ...; key-1: offsets 1, 3, ...
    engine.submit(items)
    reports = collect(engine, 5)
    assert set(reports) == {item.id for item in items[1::2]}
    assert all(d.outcome == Outcome.SUCCEEDED for d in reports.values())
    assert [offset for offset, _ in recorder.calls if offset % 2 == 0] == [0]
    engine.close(WAIT_S)
    after = engine.reports()
    assert {d.id for d in after} == {item.id for item in items[2::2]}
    assert {d.outcome for d in after} == {Outcome.CANCELLED}


class CustomBaseException(BaseException):
    """A BaseException subclass of the user's own, which `except Exception` does not catch."""


# The handler's exception -> the outcome and handler calls expected with retries=2.
HANDLER_EXCEPTIONS: dict[str, tuple[type[BaseException], Outcome, int]] = {
    "CancelledError": (asyncio.CancelledError, Outcome.FAILED, 3),
    "GeneratorExit": (GeneratorExit, Outcome.FAILED, 3),
    "CustomBaseException": (CustomBaseException, Outcome.FAILED, 3),
    "SystemExit": (SystemExit, Outcome.STOPPED, 1),
    "KeyboardInterrupt": (KeyboardInterrupt, Outcome.STOPPED, 1),
}


@pytest.mark.parametrize("name", sorted(HANDLER_EXCEPTIONS))
def test_any_base_exception_is_reported_once_and_the_lane_goes_on(
    engine_kind: str, engines: list[Engine], name: str
) -> None:
    exc_type, outcome, calls = HANDLER_EXCEPTIONS[name]

    def raises(record: Record, attempt: int) -> BaseException | None:
        return exc_type(f"raised at offset {record.offset}") if record.offset == 5 else None

    recorder = Recorder(raises=raises)
    engine = make_engine(engine_kind, recorder, engines, retries=2)
    items = make_items(20, keys=2)  # offsets 1, 3, 5, 7, ... share key-1
    engine.submit(items)
    reports = collect(engine, len(items))
    bad = reports[items[5].id]
    assert (bad.outcome, bad.attempts) == (outcome, calls)
    assert bad.error is not None and f"{name}: raised at offset 5" in bad.error
    others = [d for i, d in reports.items() if i != items[5].id]
    assert all(d.outcome == Outcome.SUCCEEDED and d.attempts == 1 for d in others)
    key1 = [offset for offset, _ in recorder.calls if offset % 2 == 1]
    assert key1 == [1, 3, *[5] * calls, *range(7, 20, 2)]
    engine.close(WAIT_S)
    assert engine.reports() == []  # one report per item, none later
