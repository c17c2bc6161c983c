"""The asyncio engine: `async def` handlers run concurrently on an event loop (uvloop when
installed); plain functions run on a bounded thread pool so GIL-releasing work gets real
parallelism.

Threads: the control thread calls submit/reports/wait/close; the runner (coroutine_lanes.py or
lanes.py) owns its threads (the event loop's, or the pool's and its retry timer's) and puts
reports on the engine's ReportQueue (base.py), which the control thread takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.base import Engine, Handler, ReportQueue, is_coroutine_handler
from pyrallel_consumer.engines.coroutine_lanes import CoroutineLaneRunner
from pyrallel_consumer.engines.lanes import ThreadLaneRunner
from pyrallel_consumer.output import collector
from pyrallel_consumer.work import Report, WorkItem

# Coroutines are cheap, threads are not: a thread per waiting record would thrash 2 cores.
DEFAULT_COROUTINES = 256
DEFAULT_THREADS = 32


class AsyncEngine(Engine):
    name = "async"

    def __init__(self, handler: Handler, config: ConsumerConfig) -> None:
        super().__init__(handler, config)
        # Known from the handler and config alone, so describe() works before start().
        self.is_coroutine = is_coroutine_handler(handler)
        self.concurrency = config.concurrency or min(
            config.max_in_flight, DEFAULT_COROUTINES if self.is_coroutine else DEFAULT_THREADS
        )

    def start(self) -> None:
        self._reports = ReportQueue()
        runner_type = CoroutineLaneRunner if self.is_coroutine else ThreadLaneRunner
        collect = collector(self.config.outputs)
        self._runner = runner_type(
            self.handler,
            self.config.retry,
            self.concurrency,
            self._reports.put,
            collect=collect,
            on_failure=self._reports.fail,
        )

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        self._runner.submit(items)

    def reports(self) -> list[Report]:
        return self._reports.take_all()

    def wait(self, timeout: float) -> None:
        self._reports.wait(timeout)

    def close(self, timeout: float) -> None:
        """The running records finish within `timeout`; the others are reported CANCELLED
        without a handler call (the consumer closes its engine after its last commit)."""
        self._runner.close(timeout)

    def describe(self) -> dict[str, Any]:
        if not hasattr(self, "_runner"):  # stats() (a metrics scrape) before run() started it
            return {"engine": self.name}
        return {
            "engine": self.name,
            "runner": "coroutines" if self.is_coroutine else "threads",
            "concurrency": self.concurrency,
        }
