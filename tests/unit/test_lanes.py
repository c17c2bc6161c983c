"""Lanes and the two lane runners: one item per lane at a time, in order; lanes in parallel."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from typing import Any

import pytest
from control_fakes import FakeClock
from engine_support import WAIT_S, Reports, wait_until

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.lanes import CoroutineLaneRunner, Lanes, ThreadLaneRunner
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome, WorkItem

NO_RETRY = RetryPolicy(retries=0, backoff_initial_s=0.0)


def make_items(lanes: int, per_lane: int, start_id: int = 1) -> list[WorkItem]:
    """Items interleaved across lanes: lane i gets offsets i, i + lanes, ..."""
    items = []
    next_id = start_id
    for n in range(per_lane):
        for lane in range(lanes):
            offset = n * lanes + lane
            record = Record("t", 0, offset, f"k{lane}".encode(), b"v")
            items.append(WorkItem(next_id, ("t", 0, lane), record, None, 0.0))
            next_id += 1
    return items


# ---- Lanes -----------------------------------------------------------------------------------


def _work(lane: Hashable | None, id: int) -> WorkItem:
    return WorkItem(id, lane, Record("t", 0, id, None, None), None, 0.0)


def test_lanes_admit_first_and_queue_the_rest() -> None:
    lanes = Lanes()
    a1, a2, a3, b1 = _work("a", 1), _work("a", 2), _work("a", 3), _work("b", 4)
    assert lanes.admit(a1)
    assert not lanes.admit(a2)
    assert not lanes.admit(a3)
    assert lanes.admit(b1)
    assert len(lanes) == 2
    assert lanes.release("a") is a2
    assert lanes.release("a") is a3
    assert lanes.release("a") is None
    assert lanes.release("b") is None
    assert len(lanes) == 0
    assert lanes.admit(_work("a", 5))  # a lane that drained starts over


def test_unordered_items_always_run() -> None:
    lanes = Lanes()
    assert all(lanes.admit(_work(None, i)) for i in range(5))
    assert lanes.release(None) is None
    assert len(lanes) == 0


# ---- runners ---------------------------------------------------------------------------------


class Trace:
    """Start/end of every handler call, to check overlap and order per lane."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Hashable, int]] = []
        self.active: dict[Hashable, int] = {}
        self.overlaps: list[tuple[Hashable, int]] = []
        self.max_active = 0

    def begin(self, record: Record) -> None:
        with self.lock:
            lane = record.key
            self.events.append(("start", lane, record.offset))
            self.active[lane] = self.active.get(lane, 0) + 1
            if self.active[lane] > 1:
                self.overlaps.append((lane, record.offset))
            self.max_active = max(self.max_active, sum(self.active.values()))

    def end(self, record: Record) -> None:
        with self.lock:
            self.active[record.key] -= 1
            self.events.append(("end", record.key, record.offset))

    def starts_by_lane(self) -> dict[Hashable, list[int]]:
        by_lane: dict[Hashable, list[int]] = {}
        for kind, lane, offset in self.events:
            if kind == "start":
                by_lane.setdefault(lane, []).append(offset)
        return by_lane


def sync_traced(trace: Trace, pause: float = 0.001) -> Callable[[Record], None]:
    def handler(record: Record) -> None:
        trace.begin(record)
        time.sleep(pause)
        trace.end(record)

    return handler


def async_traced(trace: Trace, pause: float = 0.001) -> Callable[[Record], Any]:
    async def handler(record: Record) -> None:
        trace.begin(record)
        await asyncio.sleep(pause)
        trace.end(record)

    return handler


RunnerFactory = Callable[[Callable[[Record], Any], RetryPolicy, int, Reports], Any]


def _thread_runner(handler: Any, policy: RetryPolicy, n: int, report: Reports) -> Any:
    return ThreadLaneRunner(handler, policy, n, report)


def _coroutine_runner(handler: Any, policy: RetryPolicy, n: int, report: Reports) -> Any:
    return CoroutineLaneRunner(handler, policy, n, report)


RUNNERS = {
    "threads": (_thread_runner, sync_traced),
    "coroutines": (_coroutine_runner, async_traced),
}


@pytest.fixture(params=sorted(RUNNERS))
def runner_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    runners: list[Any] = []
    yield runners
    for runner in runners:
        runner.close(5.0)


def test_lane_items_never_overlap_and_run_in_order(runner_kind: str, closing: list[Any]) -> None:
    factory, traced = RUNNERS[runner_kind]
    trace, reports = Trace(), Reports()
    runner = factory(traced(trace), NO_RETRY, 8, reports)
    closing.append(runner)
    items = make_items(lanes=6, per_lane=25)
    # Submitted in several batches, as the control plane does.
    for start in range(0, len(items), 17):
        runner.submit(items[start : start + 17])
    done = reports.wait_for(len(items))
    assert sorted(d.id for d in done) == sorted(i.id for i in items)
    assert all(d.outcome == Outcome.SUCCEEDED and d.attempts == 1 for d in done)
    assert trace.overlaps == []
    for lane, started in trace.starts_by_lane().items():
        assert started == sorted(started), f"lane {lane!r} ran out of order: {started}"
    assert trace.max_active > 1  # lanes did run concurrently


def test_different_lanes_run_concurrently_threads(closing: list[Any]) -> None:
    # Each of 4 lanes waits at a barrier for the other 3: only concurrent execution passes.
    barrier = threading.Barrier(4, timeout=WAIT_S)

    def handler(record: Record) -> None:
        barrier.wait()

    reports = Reports()
    runner = ThreadLaneRunner(handler, NO_RETRY, 4, reports)
    closing.append(runner)
    runner.submit(make_items(lanes=4, per_lane=1))
    done = reports.wait_for(4)
    assert [d.outcome for d in done] == [Outcome.SUCCEEDED] * 4


def test_different_lanes_run_concurrently_coroutines(closing: list[Any]) -> None:
    arrived: list[int] = []
    everyone = asyncio.Event()  # created lazily on the runner's loop below

    async def handler(record: Record) -> None:
        arrived.append(record.offset)
        if len(arrived) == 4:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), WAIT_S)

    reports = Reports()
    runner = CoroutineLaneRunner(handler, NO_RETRY, 4, reports)
    closing.append(runner)
    runner.submit(make_items(lanes=4, per_lane=1))
    done = reports.wait_for(4)
    assert [d.outcome for d in done] == [Outcome.SUCCEEDED] * 4


def test_cancelled_items_are_reported_cancelled(runner_kind: str, closing: list[Any]) -> None:
    gate = threading.Event()
    calls: list[int] = []

    def blocking(record: Record) -> None:
        calls.append(record.offset)
        if record.offset == 0:
            assert gate.wait(WAIT_S)

    async def blocking_async(record: Record) -> None:
        calls.append(record.offset)
        if record.offset == 0:
            await asyncio.get_running_loop().run_in_executor(None, gate.wait, WAIT_S)

    reports = Reports()
    if runner_kind == "threads":
        runner: Any = ThreadLaneRunner(blocking, NO_RETRY, 2, reports)
    else:
        runner = CoroutineLaneRunner(blocking_async, NO_RETRY, 2, reports)
    closing.append(runner)
    items = make_items(lanes=1, per_lane=4)  # one lane: items 2-4 wait behind the first
    runner.submit(items)
    deadline = time.monotonic() + WAIT_S
    while not calls and time.monotonic() < deadline:
        time.sleep(0.005)
    assert calls == [0]
    for waiting in items[1:3]:
        waiting.cancelled = True  # as the control plane does on revoke
    gate.set()
    done = {d.id: d for d in reports.wait_for(4)}
    assert done[items[0].id].outcome == Outcome.SUCCEEDED
    assert done[items[1].id].outcome == Outcome.CANCELLED
    assert done[items[2].id].outcome == Outcome.CANCELLED
    assert done[items[3].id].outcome == Outcome.SUCCEEDED
    assert calls == [0, 3]


def test_submitted_cancelled_item_is_cancelled_without_calling(
    runner_kind: str, closing: list[Any]
) -> None:
    factory, traced = RUNNERS[runner_kind]
    trace, reports = Trace(), Reports()
    runner = factory(traced(trace), NO_RETRY, 2, reports)
    closing.append(runner)
    items = make_items(lanes=2, per_lane=1)
    items[0].cancelled = True
    runner.submit(items)
    done = {d.id: d for d in reports.wait_for(2)}
    assert done[items[0].id].outcome == Outcome.CANCELLED
    assert done[items[0].id].attempts == 0
    assert done[items[1].id].outcome == Outcome.SUCCEEDED
    assert [o for _, _, o in trace.events] == [1, 1]


def test_failures_retry_within_the_lane(runner_kind: str, closing: list[Any]) -> None:
    order: list[tuple[int, int]] = []
    attempts: dict[int, int] = {}

    def flaky(record: Record) -> None:
        attempts[record.offset] = attempts.get(record.offset, 0) + 1
        order.append((record.offset, attempts[record.offset]))
        if record.offset == 0 and attempts[0] < 3:
            raise RuntimeError("flaky")
        if record.offset == 1:
            raise ValueError("always")

    async def flaky_async(record: Record) -> None:
        flaky(record)

    policy = RetryPolicy(retries=2, backoff_initial_s=0.0)
    reports = Reports()
    if runner_kind == "threads":
        runner: Any = ThreadLaneRunner(flaky, policy, 2, reports)
    else:
        runner = CoroutineLaneRunner(flaky_async, policy, 2, reports)
    closing.append(runner)
    items = make_items(lanes=1, per_lane=3)
    runner.submit(items)
    done = {d.id: d for d in reports.wait_for(3)}
    first, second, third = (done[i.id] for i in items)
    assert (first.outcome, first.attempts) == (Outcome.SUCCEEDED, 3)
    assert (second.outcome, second.attempts) == (Outcome.FAILED, 3)
    assert second.error is not None and "ValueError: always" in second.error
    assert (third.outcome, third.attempts) == (Outcome.SUCCEEDED, 1)
    assert order == [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3), (2, 1)]


# ---- retries wait in the retry queue, not in a pool thread -----------------------------------

# Backoff an hour long on a fake clock: a retry comes due only when the test moves the clock.
HOUR = 3600.0
SLOW_RETRY = RetryPolicy(retries=2, backoff_initial_s=HOUR, backoff_max_s=HOUR, jitter=0.0)


class Calls:
    """Handler calls as (offset, attempt), in call order; fails the attempts `fail` names."""

    def __init__(self, fail: Callable[[int, int], bool]) -> None:
        self.lock = threading.Lock()
        self.order: list[tuple[int, int]] = []
        self.fail = fail

    def __call__(self, record: Record) -> None:
        with self.lock:
            attempt = 1 + sum(1 for offset, _ in self.order if offset == record.offset)
            self.order.append((record.offset, attempt))
        if self.fail(record.offset, attempt):
            raise ConnectionError(f"broker down at offset {record.offset} attempt {attempt}")

    def attempts(self, offset: int) -> int:
        with self.lock:
            return sum(1 for o, _ in self.order if o == offset)

    def offsets(self, lane: int, lanes: int) -> list[int]:
        """The offsets of lane `lane` of make_items(lanes, ...) in call order, one per call."""
        with self.lock:
            return [offset for offset, _ in self.order if offset % lanes == lane]


def test_a_retry_wait_holds_no_thread(closing: list[Any]) -> None:
    # 2 threads; lanes 0 and 1 start with a record failing twice (offsets 0 and 1), lane 2's
    # records all succeed. With the threads asleep in the backoff, lane 2 would never run.
    calls = Calls(fail=lambda offset, attempt: offset in (0, 1) and attempt <= 2)
    clock, reports = FakeClock(), Reports()
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 2, reports, clock)
    closing.append(runner)
    items = make_items(lanes=3, per_lane=5)  # lane i: offsets i, i + 3, ..., i + 12
    runner.submit(items)

    lane_2 = reports.by_id(5)  # only lane 2 can finish while the retries wait
    assert {items[i].id for i in range(2, 15, 3)} == set(lane_2)
    assert all(r.outcome == Outcome.SUCCEEDED and r.attempts == 1 for r in lane_2.values())
    assert len(runner.retries) == 2
    assert calls.offsets(0, 3) == [0] and calls.offsets(1, 3) == [1]  # lanes held

    for attempt in (2, 3):
        clock.advance(HOUR)
        runner.retries.recheck()
        if attempt == 2:  # fails again: back in the queue before the clock moves on
            wait_until(
                lambda: calls.attempts(0) == calls.attempts(1) == 2 and len(runner.retries) == 2,
                "offsets 0 and 1 failed their second attempt and wait again",
            )
    done = reports.by_id(15)
    for offset in (0, 1):
        assert (done[items[offset].id].outcome, done[items[offset].id].attempts) == (
            Outcome.SUCCEEDED,
            3,
        )
    others = [r for i, r in done.items() if i not in (items[0].id, items[1].id)]
    assert all(r.outcome == Outcome.SUCCEEDED and r.attempts == 1 for r in others)
    # Order per lane held through the retries: the first record's 3 attempts, then the rest.
    for lane in (0, 1):
        assert calls.offsets(lane, 3) == [lane] * 3 + list(range(lane + 3, 15, 3))
    assert len(runner.retries) == 0


def test_a_retry_running_out_is_failed_with_every_attempt_counted(closing: list[Any]) -> None:
    calls = Calls(fail=lambda offset, attempt: offset == 0)
    clock, reports = FakeClock(), Reports()
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 1, reports, clock)
    closing.append(runner)
    items = make_items(lanes=1, per_lane=2)
    runner.submit(items)
    for attempt in (1, 2):
        wait_until(
            lambda made=attempt: calls.attempts(0) == made and len(runner.retries) == 1,
            f"attempt {attempt} of offset 0 failed and waits for its retry",
        )
        clock.advance(HOUR)
        runner.retries.recheck()
    done = reports.by_id(2)
    failed = done[items[0].id]
    assert (failed.outcome, failed.attempts) == (Outcome.FAILED, 3)
    assert failed.error is not None and "broker down at offset 0 attempt 3" in failed.error
    assert (done[items[1].id].outcome, done[items[1].id].attempts) == (Outcome.SUCCEEDED, 1)
    assert calls.order == [(0, 1), (0, 2), (0, 3), (1, 1)]


def test_an_item_cancelled_while_waiting_for_a_retry_is_not_called_again(
    closing: list[Any],
) -> None:
    calls = Calls(fail=lambda offset, attempt: offset == 0)
    clock, reports = FakeClock(), Reports()
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 2, reports, clock)
    closing.append(runner)
    items = make_items(lanes=1, per_lane=2)
    runner.submit(items)
    wait_until(lambda: len(runner.retries) == 1, "offset 0 waits for its retry")
    items[0].cancelled = True  # its partition was revoked, as the control plane does
    clock.advance(HOUR)
    runner.retries.recheck()
    done = reports.by_id(2)
    assert (done[items[0].id].outcome, done[items[0].id].attempts) == (Outcome.CANCELLED, 1)
    assert done[items[1].id].outcome == Outcome.SUCCEEDED
    assert calls.order == [(0, 1), (1, 1)]


def test_close_abandons_the_items_waiting_for_a_retry() -> None:
    """Items waiting for a retry when close() is called, and the items behind them in their
    lanes, are never reported (so never committed): close() neither waits out their backoff
    nor gives them to the failure policy."""
    calls = Calls(fail=lambda offset, attempt: offset == 0)
    reports = Reports()
    # The real clock: an hour of backoff that close() must not wait out.
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 2, reports)
    items = make_items(lanes=2, per_lane=2)  # lane 0: offsets 0 and 2; lane 1: 1 and 3
    runner.submit(items)
    reports.wait_for(2)  # lane 1's records
    wait_until(lambda: len(runner.retries) == 1, "offset 0 waits for its retry")
    runner.close(WAIT_S)
    assert {r.id for r in reports.done} == {items[1].id, items[3].id}
    assert sorted(calls.order) == [(0, 1), (1, 1), (3, 1)]
    assert len(runner.retries) == 0
    assert not runner.retries.add((items[0], 2), 0.0)  # the timer is gone: dropped
