"""Lanes and the two lane runners: one item per lane at a time, in order; lanes in parallel.
The lane table's twins (pure and native) pass the same tests and agree on random sequences."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from engine_support import WAIT_S, Gate, Reports, report_ids, wait_until
from native_twins import IMPLEMENTATIONS, needs_native, twin

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.coroutine_lanes import CoroutineLaneRunner
from pyrallel_consumer.engines.lanes import ThreadLaneRunner
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

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


def lanes_class(implementation: str) -> Any:
    return twin("lanes", implementation).Lanes


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_lanes_admit_first_and_queue_the_rest(implementation: str) -> None:
    lanes = lanes_class(implementation)()
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


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_take_waiting_empties_the_queues_but_keeps_the_lanes_held(implementation: str) -> None:
    lanes = lanes_class(implementation)()
    a1, a2, a3, b1, b2 = (_work(lane, i) for i, lane in enumerate("aaabb"))
    assert [lanes.admit(item) for item in (a1, a2, a3, b1, b2)] == [True, False, False, True, False]
    assert lanes.release("a") is a2  # a2 runs now; a3 waits behind it
    assert lanes.take_waiting() == [a3, b2]
    assert lanes.take_waiting() == []
    assert not lanes.admit(_work("a", 9))  # still held by a2
    assert lanes.release("b") is None  # b1 ended: nothing left behind it
    assert len(lanes) == 1


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_unordered_items_always_run(implementation: str) -> None:
    lanes = lanes_class(implementation)()
    assert all(lanes.admit(_work(None, i)) for i in range(5))
    assert lanes.release(None) is None
    assert len(lanes) == 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_lane_queue_drained_and_refilled_keeps_its_order(implementation: str) -> None:
    """Many items behind one running item, released while more arrive (the native queue
    compacts its consumed slots as it goes)."""
    lanes = lanes_class(implementation)()
    assert lanes.admit(_work("a", 0))
    released, next_id = [], 1
    for round_ in range(200):
        for _ in range(round_ % 7 + 1):
            assert not lanes.admit(_work("a", next_id))
            next_id += 1
        for _ in range(round_ % 5 + 1):
            following = lanes.release("a")
            if following is None:  # drained: the lane is free, the next item runs at once
                break
            released.append(following.id)
    assert len(released) > 2 * 64  # past the native queue's compaction (backlog.pxi)
    assert released == list(range(1, len(released) + 1))
    assert len(lanes) == 1


@needs_native
@pytest.mark.parametrize("seed", range(20))
def test_the_lane_table_twins_agree_on_random_operations(seed: int) -> None:
    rng = random.Random(seed)
    pure, native = lanes_class("pure")(), lanes_class("native")()
    running: list[Hashable] = []  # lanes with a running item, one entry per running item
    for step in range(300):
        if rng.random() < 0.55 or not running:
            item = _work(rng.choice([None, "a", "b", ("t", 0, b"k")]), step)
            admitted = pure.admit(item)
            assert native.admit(item) == admitted
            if admitted and item.lane is not None:
                running.append(item.lane)
        else:
            lane = running.pop(rng.randrange(len(running)))
            following = pure.release(lane)
            assert native.release(lane) is following
            if following is not None:
                running.append(lane)
        assert len(native) == len(pure)


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


def test_close_reports_every_item_waiting_in_its_lane(runner_kind: str) -> None:
    """close() right after a submit: every item is reported, each lane's in order; those not
    yet running are CANCELLED. Before, a lane's next item was queued behind the runner's stop
    signals (to let other lanes go first) and never reported: of 3 lanes of 10, 3 items were."""
    factory, traced = RUNNERS[runner_kind]
    trace, reports = Trace(), Reports()
    runner = factory(traced(trace, pause=0.0005), NO_RETRY, 4, reports)
    items = make_items(lanes=3, per_lane=10)
    runner.submit(items)
    runner.close(WAIT_S)
    assert sorted(d.id for d in reports.done) == sorted(i.id for i in items)
    assert {d.outcome for d in reports.done} <= {Outcome.SUCCEEDED, Outcome.CANCELLED}
    for lane, started in trace.starts_by_lane().items():
        assert started == sorted(started), f"lane {lane!r} ran out of order: {started}"


def test_close_lets_only_the_running_items_finish(runner_kind: str) -> None:
    """close(), as the async engine and a process worker do when told to finish: the items
    running finish, every other item is reported CANCELLED with no handler call."""
    gate, reports = Gate(), Reports()
    handler = gate.blocking if runner_kind == "threads" else gate.awaiting
    runner = RUNNERS[runner_kind][0](handler, NO_RETRY, 4, reports)
    items = make_items(lanes=2, per_lane=5)
    runner.submit(items)
    wait_until(lambda: len(gate.calls) == 2, "one item of each lane runs")
    closing = threading.Thread(target=runner.close, args=(WAIT_S,))
    closing.start()
    wait_until(lambda: runner._closing, "close() took effect, both items still running")
    gate.open()
    closing.join(WAIT_S)
    outcomes = {d.id: d.outcome for d in reports.done}
    assert sorted(outcomes) == sorted(i.id for i in items)
    assert sorted(gate.calls) == [0, 1]
    running = {i.id for i in items if i.record.offset in (0, 1)}
    assert {i for i, o in outcomes.items() if o == Outcome.SUCCEEDED} == running
    assert all(o == Outcome.CANCELLED for i, o in outcomes.items() if i not in running)


def test_cancel_unstarted_lets_the_running_items_finish_and_cancels_the_rest(
    runner_kind: str, closing: list[Any]
) -> None:
    """cancel_unstarted(), as a process worker does when the run stops on an error: the items
    running finish, the others and any submitted later are CANCELLED with no handler call,
    and the runner stays open."""
    gate, reports = Gate(), Reports()
    handler = gate.blocking if runner_kind == "threads" else gate.awaiting
    runner = RUNNERS[runner_kind][0](handler, NO_RETRY, 4, reports)
    closing.append(runner)
    items = make_items(lanes=2, per_lane=5)
    runner.submit(items[:8])
    wait_until(lambda: len(gate.calls) == 2, "one item of each lane runs")
    runner.cancel_unstarted()
    wait_until(lambda: runner._closing, "the cancel took effect")
    runner.submit(items[8:])
    gate.open()
    reports.wait_for(len(items))
    outcomes = {d.id: d.outcome for d in reports.done}
    assert sorted(gate.calls) == [0, 1]
    running = {i.id for i in items if i.record.offset in (0, 1)}
    assert {i for i, o in outcomes.items() if o == Outcome.SUCCEEDED} == running
    assert all(o == Outcome.CANCELLED for i, o in outcomes.items() if i not in running)


def test_cancel_unstarted_reports_the_items_waiting_in_a_lane_at_once(
    runner_kind: str, closing: list[Any]
) -> None:
    """The items waiting behind a running item are reported CANCELLED when the run stops, not
    when the running item ends: a stuck handler held them, counted in flight and then
    abandoned (the trial: 256 "in flight" at shutdown, 8 of them running)."""
    gate, reports = Gate(), Reports()
    handler = gate.blocking if runner_kind == "threads" else gate.awaiting
    runner = RUNNERS[runner_kind][0](handler, NO_RETRY, 4, reports)
    closing.append(runner)
    items = make_items(lanes=2, per_lane=4)
    runner.submit(items)
    wait_until(lambda: len(gate.calls) == 2, "one item of each lane runs")
    runner.cancel_unstarted()
    waiting = {i.id for i in items if i.record.offset not in (0, 1)}
    cancelled = reports.wait_for(len(waiting))  # while both running items are held
    assert {d.id for d in cancelled} == waiting
    assert {d.outcome for d in cancelled} == {Outcome.CANCELLED}
    gate.open()
    done = reports.wait_for(len(items))
    assert sorted(d.id for d in done) == sorted(i.id for i in items)  # each once
    assert sorted(gate.calls) == [0, 1]


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


def test_coroutine_runner_reports_first_try_successes_together_and_the_rest_alone() -> None:
    raw: list[Report] = []  # appended on the loop thread, read once every item is covered

    async def handler(record: Record) -> None:
        if record.offset == 3:
            raise ValueError("bad record")

    runner = CoroutineLaneRunner(handler, RetryPolicy(retries=0), 4, raw.append)
    try:
        runner.submit(
            [WorkItem(i, None, Record("t", 0, i, None, b""), None, 0.0) for i in range(200)]
        )
        wait_until(lambda: sum(len(report_ids(r)) for r in list(raw)) >= 200, "all reported")
    finally:
        runner.close(WAIT_S)
    covered = [item_id for report in raw for item_id in report_ids(report)]
    assert sorted(covered) == list(range(200))  # each item reported exactly once
    (failed,) = [r for r in raw if r.outcome is Outcome.FAILED]
    assert type(failed) is Report and failed.id == 3
    groups = [r for r in raw if isinstance(r, GroupReport)]
    assert groups and len(groups) < 199  # successes travel together
    assert all(g.outcome is Outcome.SUCCEEDED and g.attempts == 1 for g in groups)
