"""RetryQueue: entries handed on when due, earliest first, by one timer thread; close drops.
And ThreadLaneRunner's retries through it: no pool thread waits out a backoff, the lane stays
held, attempts are counted, close() abandons the waiting items."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from control_fakes import FakeClock
from engine_support import WAIT_S, Reports, make_items, wait_until

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.lanes import ThreadLaneRunner
from pyrallel_consumer.engines.retry_queue import RetryQueue
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


class Handed:
    """The `due` callback: the entries handed on, in order (the timer thread appends)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: list[str] = []

    def __call__(self, entry: str) -> None:
        with self.lock:
            self.entries.append(entry)

    def __len__(self) -> int:
        with self.lock:
            return len(self.entries)


def test_entries_are_handed_on_when_due_earliest_first() -> None:
    clock, handed = FakeClock(), Handed()
    retries: RetryQueue[str] = RetryQueue(handed, clock)
    retries.add("late", 10.0)
    retries.add("early", 1.0)
    retries.add("early too", 1.0)  # same due time: after "early", the order they came in
    retries.add("middle", 5.0)
    assert len(retries) == 4
    clock.advance(5.0)
    retries.recheck()
    wait_until(lambda: len(handed) == 3, "the entries due after 5 s were handed on")
    # The timer hands on everything due in one pass: "late" is not due, so it waits.
    assert handed.entries == ["early", "early too", "middle"]
    assert len(retries) == 1
    clock.advance(5.0)
    retries.recheck()
    wait_until(lambda: len(handed) == 4, "the last entry was handed on")
    assert handed.entries[-1] == "late"
    assert retries.close() == 0


def test_a_new_earliest_entry_wakes_the_timer() -> None:
    # The real clock: the timer is asleep for an hour when an entry due now comes in.
    handed = Handed()
    retries: RetryQueue[str] = RetryQueue(handed)
    retries.add("in an hour", 3600.0)
    retries.add("now", 0.0)
    wait_until(lambda: len(handed) == 1, "the entry due now was handed on")
    assert handed.entries == ["now"]
    assert retries.close() == 1


def test_close_drops_the_waiting_entries_and_any_added_later() -> None:
    clock, handed = FakeClock(), Handed()
    retries: RetryQueue[str] = RetryQueue(handed, clock)
    assert retries.add("a", 1.0)
    assert retries.add("b", 2.0)
    assert retries.close() == 2
    assert len(retries) == 0
    assert not retries.add("c", 0.0)
    clock.advance(10.0)
    retries.recheck()
    assert retries.close() == 0  # closing twice is harmless
    assert handed.entries == []  # the timer thread ended with close(): nothing handed later


def test_close_with_nothing_added() -> None:
    retries: RetryQueue[str] = RetryQueue(Handed())
    assert retries.close() == 0


# ---- ThreadLaneRunner: retries wait in the retry queue, not in a pool thread ---------------

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
        """The offsets of lane `lane` of make_items(..., keys=lanes) in call order, one per call."""
        with self.lock:
            return [offset for offset, _ in self.order if offset % lanes == lane]


def test_a_retry_wait_holds_no_thread(closing: list[Any]) -> None:
    # 2 threads; lanes 0 and 1 start with a record failing twice (offsets 0 and 1), lane 2's
    # records all succeed. With the threads asleep in the backoff, lane 2 would never run.
    calls = Calls(fail=lambda offset, attempt: offset in (0, 1) and attempt <= 2)
    clock, reports = FakeClock(), Reports()
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 2, reports, clock)
    closing.append(runner)
    items = make_items(15, keys=3)  # lane i: offsets i, i + 3, ..., i + 12
    runner.submit(items)

    lane_2 = reports.by_id(5)  # only lane 2 can finish while the retries wait
    assert {items[i].id for i in range(2, 15, 3)} == set(lane_2)
    assert all(r.outcome == Outcome.SUCCEEDED and r.attempts == 1 for r in lane_2.values())
    wait_until(lambda: len(runner.retries) == 2, "offsets 0 and 1 wait for their retry")
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
    items = make_items(2, keys=1)
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
    items = make_items(2, keys=1)
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
    """Items waiting for a retry when close() is called are never reported (so never
    committed): close() neither waits out their backoff nor gives them to the failure policy.
    The items behind them in their lanes never started: reported CANCELLED."""
    calls = Calls(fail=lambda offset, attempt: offset == 0)
    reports = Reports()
    # The real clock: an hour of backoff that close() must not wait out.
    runner = ThreadLaneRunner(calls, SLOW_RETRY, 2, reports)
    items = make_items(4, keys=2)  # lane 0: offsets 0 and 2; lane 1: 1 and 3
    runner.submit(items)
    reports.wait_for(2)  # lane 1's records
    wait_until(lambda: len(runner.retries) == 1, "offset 0 waits for its retry")
    runner.close(WAIT_S)
    assert {r.id for r in reports.done} == {items[1].id, items[2].id, items[3].id}
    assert [r.outcome for r in reports.done if r.id == items[2].id] == [Outcome.CANCELLED]
    assert sorted(calls.order) == [(0, 1), (1, 1), (3, 1)]
    assert len(runner.retries) == 0
    assert not runner.retries.add((items[0], 2), 0.0)  # the timer is gone: dropped
