"""The asyncio engine: `async def` handlers run concurrently on an event loop (uvloop when
installed); plain functions run on a bounded thread pool so GIL-releasing work gets real
parallelism."""

from __future__ import annotations

import inspect
import threading
from collections import deque
from typing import Any

from pyrallel_consumer.engines.base import Done, Engine, WorkItem
from pyrallel_consumer.engines.lanes import CoroutineLaneRunner, ThreadLaneRunner

# Coroutines are cheap, threads are not: a thread per waiting record would thrash 2 cores.
DEFAULT_COROUTINES = 256
DEFAULT_THREADS = 32


class CompletionQueue:
    """Reports handed from runner threads to the control thread.

    A deque (append/popleft are atomic) plus an event to wake the control thread; the event is
    cleared before draining, so a report that lands after the clear sets it again.
    """

    def __init__(self) -> None:
        self._items: deque[Done] = deque()
        self._ready = threading.Event()

    def put(self, done: Done) -> None:
        self._items.append(done)
        self._ready.set()

    def drain(self) -> list[Done]:
        self._ready.clear()
        items = self._items
        return [items.popleft() for _ in range(len(items))]

    def wait(self, timeout: float) -> None:
        self._ready.wait(timeout)

    def wake(self) -> None:
        """End a wait() with no report (an engine has news that drain() will raise)."""
        self._ready.set()


class AsyncEngine(Engine):
    name = "async"

    def start(self) -> None:
        self._completions = CompletionQueue()
        self.is_coroutine = inspect.iscoroutinefunction(self.handler)
        runner_type = CoroutineLaneRunner if self.is_coroutine else ThreadLaneRunner
        self.concurrency = self.config.concurrency or min(
            self.config.max_in_flight,
            DEFAULT_COROUTINES if self.is_coroutine else DEFAULT_THREADS,
        )
        self._runner = runner_type(
            self.handler, self.config.retry, self.concurrency, self._completions.put
        )

    def submit(self, items: list[WorkItem]) -> None:
        self._runner.submit(items)

    def drain(self) -> list[Done]:
        return self._completions.drain()

    def wait(self, timeout: float) -> None:
        self._completions.wait(timeout)

    def close(self, timeout: float) -> None:
        self._runner.close(timeout)

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "runner": "coroutines" if self.is_coroutine else "threads",
            "concurrency": self.concurrency,
        }
