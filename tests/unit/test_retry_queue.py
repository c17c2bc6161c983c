"""RetryQueue: entries handed on when due, earliest first, by one timer thread; close drops."""

from __future__ import annotations

import threading

from control_fakes import FakeClock
from engine_support import wait_until

from pyrallel_consumer.engines.retry_queue import RetryQueue


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
