"""The reference engine: one record at a time, in submission order, on one helper thread.

The handler runs on a helper thread rather than the control thread so that a slow handler never
stops the poll loop: librdkafka drops a member that does not poll within max.poll.interval.ms,
and its partitions (and the record being handled) go to another member. `submit` waits for the
batch it was given, up to TURN_BUDGET_S, so with fast handlers this is the classic loop
(consume a batch, handle each record, commit); a slower handler lets the loop go on serving the
group meanwhile, and what it submits then queues here and runs one at a time, in order.

Why a batch per turn, not one record: the hand-over to the helper costs two thread wake-ups;
paid per record it cut the zero-work rate to a quarter (bench.overhead), paid per batch it is
noise.

Threads: the control thread calls submit/reports/wait/close; the helper thread runs handlers
and sets `_idle` when it has run everything submitted. Hand-offs: items go over a SimpleQueue,
reports come back through a ReportQueue, `_idle` is an Event (seen early at worst: then submit
returns before its items ran, and the loop turns once more), and `_closing` is a flag close()
only ever sets (seen late, one more item runs, within close's timeout like the running one).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from queue import SimpleQueue

from pyrallel_consumer.engines.attempts import (
    FIRST_TRY,
    Attempted,
    escaped,
    retry_after,
    succeeded,
)
from pyrallel_consumer.engines.base import Engine, ReportQueue, guarded
from pyrallel_consumer.output import collector
from pyrallel_consumer.work import Outcome, Report, WorkItem

# How long submit waits for the handler before returning to the poll loop: far below any
# sensible max.poll.interval.ms, long enough that a fast handler finishes inside it.
TURN_BUDGET_S = 0.05


class BaselineEngine(Engine):
    """No concurrency: handler calls never overlap, so every ordering holds trivially."""

    name = "baseline"

    def start(self) -> None:
        self._reports = ReportQueue()
        # A submit's items, or None from close().
        self._queue: SimpleQueue[Sequence[WorkItem[object]] | None] = SimpleQueue()
        self._idle = threading.Event()  # set when the helper has run everything submitted
        self._closing = False
        self._thread = threading.Thread(
            target=guarded(self._work, "pyrallel-baseline", self._reports.fail),
            name="pyrallel-baseline",
            daemon=True,
        )
        self._thread.start()

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        """Queue `items` and wait until they ran or TURN_BUDGET_S passed."""
        self._idle.clear()
        self._queue.put(items)  # one entry per submit, not per item: one put, one get a turn
        self._idle.wait(TURN_BUDGET_S)

    def _work(self) -> None:
        handler, policy, report, queue = (
            self.handler,
            self.config.retry,
            self._reports.put,
            self._queue,
        )
        collect = collector(self.config.outputs)
        while True:
            items = queue.get()
            if items is None:
                return
            for item in items:
                if self._closing:
                    return  # close(): the items not started are abandoned
                if item.cancelled:
                    report(Report(item.id, Outcome.CANCELLED, 0, time.monotonic()))
                    continue
                record = item.record
                result: Attempted
                try:
                    # The first attempt called here, the retries (sleeping inline) only after
                    # a failure: no call per record on the success path.
                    try:
                        returned = handler(record)
                        if collect is None or returned is None:
                            result = FIRST_TRY
                        else:  # what collecting raises fails the attempt
                            result = succeeded(1, collect(returned))
                    except BaseException as exc:
                        result = retry_after(exc, handler, record, policy, collect)
                except BaseException as exc:
                    # Never end this loop with the item in flight: it is reported (FAILED)
                    # like any other, and the items behind it still run.
                    result = escaped(exc)
                outcome, attempts, error, outputs = result
                report(Report(item.id, outcome, attempts, time.monotonic(), error, outputs))
            if queue.empty():
                # A submit racing with this check may see idle early; it then returns before its
                # record ran, which only means the loop turns once more: reports come via reports().
                self._idle.set()

    def reports(self) -> list[Report]:
        return self._reports.take_all()

    def wait(self, timeout: float) -> None:
        self._reports.wait(timeout)

    def close(self, timeout: float) -> None:
        """Let the running record finish within `timeout`; records queued behind it are
        abandoned (never started, so never committed)."""
        self._closing = True
        self._queue.put(None)
        self._thread.join(timeout)
