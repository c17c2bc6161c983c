"""The engines' per-record path: how much Python it runs, and the wake-ups it must not lose.

Every engine thread shares the GIL with the control thread, so the Python function calls an
engine makes per record (each ~0.1 us) come straight off the zero-work throughput. The budget
tests count them with a profile hook in the engine's own threads: deterministic, no timing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections import Counter
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from engine_support import (
    WAIT_S,
    Gate,
    Reports,
    collect,
    engine_config,
    report_ids,
    wait_until,
)

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.asyncio_engine import AsyncEngine
from pyrallel_consumer.engines.base import Engine, ReportQueue
from pyrallel_consumer.engines.baseline import BaselineEngine
from pyrallel_consumer.engines.coroutine_lanes import CoroutineLaneRunner
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome, Report, WorkItem

RECORDS = 4000


def noop(record: Record) -> None:
    """The zero-work handler."""


async def noop_async(record: Record) -> None:
    """The zero-work coroutine handler."""


def items(count: int, start: int = 0, ordered: bool = True) -> list[WorkItem[object]]:
    """`count` items, each in a lane of its own (or unordered), ids from `start`."""
    return [
        WorkItem(i, ("t", 0, i) if ordered else None, Record("t", 0, i, None, b""), None, 0.0)
        for i in range(start, start + count)
    ]


# ---- Python calls per record -----------------------------------------------------------------

# The event loop's own Python code (the standard loop when uvloop is missing) is not the
# runner's per-record path: its calls are not counted.
LOOP_MODULES = (
    os.path.join("asyncio", "base_events.py"),
    os.path.join("asyncio", "events.py"),
    os.path.join("asyncio", "selector_events.py"),
    os.path.join("asyncio", "unix_events.py"),
    "selectors.py",
)

# Python calls per successful record in the engine's threads, the handler's included, plus
# half a call of slack (a worker's resumption, a thread starting late):
# - baseline: handler, Report(), ReportQueue.put, Event.is_set;
# - threads: the same plus Lanes.release when ordered (Lanes.admit runs on the control thread);
# - coroutines: the same plus Lanes.admit when ordered, on the loop thread; no task switch per
#   record, although fewer items are submitted at a time than there are idle workers.
BUDGETS = {
    ("baseline", True): 4.5,
    ("async-threads", True): 5.5,
    ("async-threads", False): 4.5,
    ("async-coroutines", True): 6.5,
    ("async-coroutines", False): 4.5,
}
CHUNK = 50  # items per submit: as the control plane does with few lanes, below concurrency
# And once per take of the reports (a take clears the wake-up, the next put sets it again):
# Event.set and the Condition calls under it.
CALLS_PER_WAKE_UP = 6


class CallCounter:
    """A profile hook counting Python function calls (and coroutine resumptions) by
    (file, function), installed in the threads started while it is `installed()`. The
    counter is written by the engine threads; read it once they are idle."""

    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            if not code.co_filename.endswith(LOOP_MODULES):
                self.calls[(os.path.basename(code.co_filename), code.co_name)] += 1

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        threading.setprofile(self)
        try:
            yield
        finally:
            threading.setprofile(None)


def started_engine(kind: str, engines: list[Engine], counter: CallCounter) -> Engine:
    """A started engine of `kind` running a zero-work handler, its threads counted."""
    engine: Engine
    if kind == "baseline":
        engine = BaselineEngine(noop, engine_config("baseline"))
    else:
        handler = noop_async if kind == "async-coroutines" else noop
        engine = AsyncEngine(handler, engine_config("async"))
    engines.append(engine)
    with counter.installed():
        engine.start()
    return engine


@pytest.mark.parametrize(("kind", "ordered"), sorted(BUDGETS))
def test_python_calls_per_record_stay_within_budget(
    kind: str, ordered: bool, engines: list[Engine]
) -> None:
    counter = CallCounter()
    engine = started_engine(kind, engines, counter)
    engine.submit(items(100, ordered=ordered))  # warm up: every worker thread has started
    collect(engine, 100)
    counter.calls.clear()
    outcomes, takes = Counter[Outcome](), 0
    for start in range(100, 100 + RECORDS, CHUNK):
        engine.submit(items(CHUNK, start=start, ordered=ordered))
        while sum(outcomes.values()) < start - 100 + CHUNK:
            engine.wait(WAIT_S)
            for report in engine.reports():
                outcomes[report.outcome] += len(report_ids(report))
            takes += 1
    assert outcomes == {Outcome.SUCCEEDED: RECORDS}
    calls = sum(counter.calls.values())
    budget = BUDGETS[(kind, ordered)] * RECORDS + CALLS_PER_WAKE_UP * (takes + 1)
    busiest = {f"{file}:{name}": n for (file, name), n in counter.calls.most_common(8)}
    assert calls <= budget, (
        f"{kind} made {calls} Python calls for {RECORDS} records and {takes} takes, over its "
        f"budget of {budget:.0f}: {busiest}"
    )


# ---- ReportQueue: one wake-up per take, none lost ---------------------------------------------


def report(n: int) -> Report:
    return Report(n, Outcome.SUCCEEDED, 1, 0.0)


def test_a_put_after_a_take_wakes_again() -> None:
    reports = ReportQueue()
    reports.put(report(1))
    reports.put(report(2))  # finds the wake-up standing
    assert reports.wait(0)
    assert [r.id for r in reports.take_all()] == [1, 2]
    assert not reports.wait(0)
    reports.put(report(3))
    assert reports.wait(0)
    assert [r.id for r in reports.take_all()] == [3]


def test_no_report_is_left_without_a_wake_up() -> None:
    """Producers put while the control thread takes and waits: every wait ends by a wake-up
    (never its timeout) while reports are due, and every report is taken exactly once."""
    reports = ReportQueue()
    producers, each = 4, 20_000

    def produce(first: int) -> None:
        for n in range(first, first + each):
            reports.put(report(n))

    threads = [threading.Thread(target=produce, args=(p * each,)) for p in range(producers)]
    for thread in threads:
        thread.start()
    taken: list[int] = []
    while len(taken) < producers * each:
        taken.extend(r.id for r in reports.take_all())
        if len(taken) < producers * each:
            assert reports.wait(WAIT_S), f"a report was left without a wake-up ({len(taken)})"
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(producers * each))
    assert reports.take_all() == []


# ---- behaviour kept on the fast paths --------------------------------------------------------


def test_baseline_close_abandons_the_rest_of_a_submit(engines: list[Engine]) -> None:
    """A submit's items travel as one entry; close() still lets only the running record
    finish: the items behind it are never called, never reported."""
    release, calls = threading.Event(), []

    def handle(record: Record) -> None:
        calls.append(record.offset)
        release.wait(WAIT_S)

    engine = BaselineEngine(handle, engine_config("baseline"))
    engine.start()
    engine.submit(items(3))  # returns after its turn budget: offset 0 is still running
    wait_until(lambda: calls == [0], "the first record started")
    engine.close(0.0)
    release.set()
    engine.close(WAIT_S)  # again, to wait for the helper thread to end
    assert calls == [0]
    assert [r.id for r in engine.reports()] == [0]


@pytest.mark.parametrize("coroutines", [False, True], ids=["threads", "coroutines"])
def test_async_close_lets_the_running_record_finish_and_starts_no_other(
    coroutines: bool, engines: list[Engine]
) -> None:
    """As the baseline's (and the Engine interface says): a record behind the running one in
    its lane, or ready for a free runner, is reported CANCELLED, its handler never called.
    Before, the async engine started them once the running one ended."""
    gate = Gate()
    config = engine_config("async", concurrency=1)
    engine = AsyncEngine(gate.awaiting if coroutines else gate.blocking, config)
    engines.append(engine)
    engine.start()
    lane = ("t", 0, b"k")
    waiting = [
        WorkItem(0, lane, Record("t", 0, 0, b"k", b""), None, 0.0),
        WorkItem(1, lane, Record("t", 0, 1, b"k", b""), None, 0.0),  # behind 0 in its lane
        WorkItem(2, None, Record("t", 0, 2, None, b""), None, 0.0),  # ready, no runner free
    ]
    engine.submit(waiting)
    wait_until(lambda: gate.calls == [0], "the first record started")
    closing = threading.Thread(target=engine.close, args=(WAIT_S,))
    closing.start()
    wait_until(lambda: engine._runner._closing, "close() took effect")
    gate.open()
    closing.join(WAIT_S)
    assert gate.calls == [0]
    outcomes = {item_id: done.outcome for done in engine.reports() for item_id in report_ids(done)}
    assert outcomes == {0: Outcome.SUCCEEDED, 1: Outcome.CANCELLED, 2: Outcome.CANCELLED}


def test_a_handler_cancelling_its_task_without_awaiting_loses_no_worker(
    closing: list[Any],
) -> None:
    """The cancel lands where the worker next awaits, between items: the runner takes it
    back and keeps the worker, so later items still run (one worker: none would)."""

    async def handle(record: Record) -> None:
        if record.offset == 0:
            task = asyncio.current_task()
            assert task is not None
            task.cancel()

    reports = Reports()
    runner = CoroutineLaneRunner(handle, RetryPolicy(retries=0, backoff_initial_s=0.0), 1, reports)
    closing.append(runner)
    runner.submit(items(1))
    reports.wait_for(1)
    runner.submit(items(2, start=1))
    done = reports.by_id(3)
    assert [done[i].outcome for i in range(3)] == [Outcome.SUCCEEDED] * 3


def test_coroutine_workers_fan_out_over_items_submitted_one_by_one(closing: list[Any]) -> None:
    """Idle workers are woken one at a time; still, every waiting handler gets a worker: the
    8 handlers below each wait until all 8 are running."""
    arrived: list[int] = []
    everyone = asyncio.Event()  # created lazily on the runner's loop below

    async def handle(record: Record) -> None:
        arrived.append(record.offset)
        if len(arrived) == 8:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), WAIT_S)

    reports = Reports()
    runner = CoroutineLaneRunner(handle, RetryPolicy(retries=0, backoff_initial_s=0.0), 8, reports)
    closing.append(runner)
    for n in range(8):
        runner.submit(items(1, start=n))
    done = reports.by_id(8)
    assert [done[i].outcome for i in range(8)] == [Outcome.SUCCEEDED] * 8
