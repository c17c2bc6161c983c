"""Items waiting out a retry backoff, in due-time order, without a thread per item.

ThreadLaneRunner (lanes.py) puts an item whose attempt failed here instead of sleeping on its
pool thread; one timer thread hands each entry on (to the runner's ready queue) when it is due,
so with a thousand records in backoff the pool's threads still run every other lane.

Why one timer thread rather than the pool's threads waiting on a Condition with a timeout: the
ready queue stays a SimpleQueue (the per-record hot path pays nothing for retries), and exactly
one thread is responsible for the earliest due time, so no pool thread busy with a long handler
can leave a due retry unnoticed while the others sleep. The timer starts with the first retry:
a runner that never retries has no extra thread.

Threads: any thread calls `add`; the timer thread calls `due` (so `due` must not block); the
heap, `_closed` and `_thread` are guarded by `_cond`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from pyrallel_consumer.engines.base import ThreadFailure, guarded

T = TypeVar("T")

Clock = Callable[[], float]  # monotonic seconds


class RetryQueue(Generic[T]):
    """Entries handed to `due(entry)` once `delay_s` seconds of `clock` passed since `add`,
    earliest due first, entries due at the same time in the order they were added."""

    def __init__(
        self,
        due: Callable[[T], None],
        clock: Clock = time.monotonic,
        name: str = "retries",
        on_failure: ThreadFailure | None = None,
    ) -> None:
        """`on_failure(thread name, exc)`: told when the timer thread ends on an exception
        (engines/base.py, `guarded`, says why)."""
        self._due = due
        self._on_failure = on_failure
        self._clock = clock
        self._name = name
        self._cond = threading.Condition()
        # (due time, sequence number, entry): the sequence breaks ties, as entries need not
        # be comparable, and keeps them first in, first out.
        self._heap: list[tuple[float, int, T]] = []
        self._sequence = itertools.count()
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, entry: T, delay_s: float) -> bool:
        """Hand `entry` on after `delay_s` seconds. False, and the entry is dropped, when the
        queue is closed."""
        with self._cond:
            if self._closed:
                return False
            sequence = next(self._sequence)
            heapq.heappush(self._heap, (self._clock() + delay_s, sequence, entry))
            if self._thread is None:
                thread_name = f"pyrallel-{self._name}"
                self._thread = threading.Thread(
                    target=guarded(self._run, thread_name, self._on_failure),
                    name=thread_name,
                    daemon=True,
                )
                self._thread.start()
            elif self._heap[0][1] == sequence:
                self._cond.notify()  # a new earliest due time: the timer waits too long
            return True

    def recheck(self) -> None:
        """Compare the due times with the clock again now. The timer does so by itself when
        the earliest entry is due; call this after moving an injected clock forward."""
        with self._cond:
            self._cond.notify()

    def _run(self) -> None:
        heap, clock = self._heap, self._clock
        with self._cond:
            while not self._closed:
                if not heap:
                    self._cond.wait()
                    continue
                wait_s = heap[0][0] - clock()
                if wait_s > 0:
                    self._cond.wait(wait_s)
                    continue
                self._due(heapq.heappop(heap)[2])

    def close(self) -> int:
        """Stop the timer and drop the entries still waiting (never handed on), and any
        added from now on. Returns how many were dropped."""
        with self._cond:
            self._closed = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()  # never long: `due` does not block
        return dropped

    def __len__(self) -> int:
        """Entries waiting."""
        with self._cond:
            return len(self._heap)
