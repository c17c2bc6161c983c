"""The coroutine lane runner: `async def` handlers on an event loop in its own thread, with the
lane bookkeeping of lanes.py (whose docstring says what a lane runner promises: one item of a
lane at a time, in order, every item reported).

Threads: `submit` and `close` are called by one thread (the control thread, or a process
worker's main thread); the lane table, the ready deques and the grouped successes belong to the
event loop's thread, reached from outside only through `call_soon_threadsafe` and
`run_coroutine_threadsafe`; reports leave through the `report` callable, on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.attempts import (
    FIRST_TRY,
    Attempted,
    Collect,
    escaped,
    retry_after_async,
)
from pyrallel_consumer.engines.attempts import succeeded as success
from pyrallel_consumer.engines.base import Handler, ThreadFailure, guarded
from pyrallel_consumer.engines.lane_table import Item, Lanes
from pyrallel_consumer.engines.lanes import ReportSink, cancelled_report
from pyrallel_consumer.work import GroupReport, Outcome, Report

# How long a CoroutineLaneRunner holds back the reports of items that succeeded, to send them
# as one (its docstring): far below any commit interval or latency worth measuring.
GROUP_REPORT_S = 0.001

# How long CoroutineLaneRunner.close waits, after its timeout, for the tasks it cancelled.
ABANDON_WAIT_S = 1.0


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (the fast path), else the standard loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _take_back_cancel() -> None:
    """Undo every cancel() of the running task (a handler's, never close()'s)."""
    task = asyncio.current_task()
    while task is not None and task.uncancel():
        pass


class CoroutineLaneRunner:
    """`async def` handlers on an event loop in its own thread, `concurrency` coroutines.

    The ready queue is a deque of items plus a deque of idle workers' futures, not an
    asyncio.Queue (its get/put_nowait are Python code with a few calls each, paid per record).
    Idle workers are woken one at a time: one woken worker is on its way at most, and each
    worker that takes an item while more are ready wakes the next. So handlers that await
    something fan the items out over the workers, one wake-up per item waited on, while
    handlers that finish without suspending run back to back in the running worker, with no
    task switch per record (handing each item to an idle worker, the rejected alternative,
    costs a future and a trip through the event loop per record).

    Invariant: while items are ready, a woken worker is on its way (`_waking`) or no worker
    is idle, so no item waits while a worker sleeps. The deques, `_waking`, `_lanes` and the
    grouped successes belong to the loop thread: other threads reach them only through the
    loop (`submit` by call_soon_threadsafe, `close` by run_coroutine_threadsafe).

    Items that succeed on their first attempt are reported together, as one GroupReport, at
    the end of the event loop's turn or once the first of them is GROUP_REPORT_S old, whichever
    comes first; their `completed_at` is the report's time, so at most that much late. The
    control thread then applies a burst of records in one pass instead of one report each.
    Every other outcome, and a success with outputs, is reported alone, at once, after the
    grouped successes before it.
    """

    def __init__(
        self,
        handler: Handler,
        policy: RetryPolicy,
        concurrency: int,
        report: ReportSink,
        collect: Collect = None,
        on_failure: ThreadFailure | None = None,
    ) -> None:
        """`on_failure`: told when the event loop's thread ends on an exception (base.guarded)."""
        self._handler = handler
        self._policy = policy
        self._report = report
        self._collect = collect
        self._on_failure = on_failure
        self._concurrency = concurrency
        self._lanes = Lanes()
        self._ready: deque[Item | None] = deque()  # None: a worker's signal to end
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = False  # a worker was woken and has not run yet
        self._closing = False  # set by close(), on the loop thread: what is not running is not run
        # Items that succeeded on their first attempt, reported together (GROUP_REPORT_S).
        self._succeeded: list[int] = []
        self._group_since = 0.0  # when the first of them succeeded
        # Set by close() (on the loop thread) just before it cancels the worker tasks: from
        # then on a CancelledError out of an item abandons it instead of failing it.
        self._abandoning = False
        self.loop = new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(
            target=guarded(self._run_loop, "pyrallel-loop", on_failure),
            name="pyrallel-loop",
            daemon=True,
        )
        self._thread.start()
        self._started.wait()

    def _run_loop(self) -> None:
        try:
            asyncio.set_event_loop(self.loop)
            if self._on_failure is not None:
                self.loop.set_exception_handler(self._loop_failed)
            self._workers = [self.loop.create_task(self._work()) for _ in range(self._concurrency)]
            self.loop.call_soon(self._started.set)
            self.loop.run_forever()
        finally:
            self._started.set()  # also after a failure before the loop ran: no waiting forever

    def _loop_failed(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """The loop's exception handler: an exception escaping one of this runner's callbacks
        or tasks (the worker tasks catch everything a handler raises, so this is a bug, e.g.
        a report that could not be built) leaves the loop running but its item unreported;
        it is a thread failure like any other (base.guarded)."""
        if self._abandoning:  # close() is cancelling the tasks: what follows is expected
            loop.default_exception_handler(context)
            return
        exc = context.get("exception") or RuntimeError(str(context.get("message")))
        assert self._on_failure is not None  # installed only with one
        self._on_failure("pyrallel-loop", exc)

    def submit(self, items: Sequence[Item]) -> None:
        self.loop.call_soon_threadsafe(self._admit, items)

    def _admit(self, items: Sequence[Item]) -> None:
        lanes, ready = self._lanes, self._ready
        for item in items:
            if item.lane is None or lanes.admit(item):
                ready.append(item)
        if ready and not self._waking:
            self._wake()

    def _wake(self) -> None:
        """Wake one idle worker for the ready items, if any is idle (on the loop thread)."""
        idle = self._idle
        while idle:
            waiter = idle.popleft()
            if not waiter.done():  # done: cancelled with its worker by close()
                waiter.set_result(None)
                self._waking = True
                return

    async def _work(self) -> None:
        handler, policy, report, collect = self._handler, self._policy, self._report, self._collect
        ready, idle, lanes = self._ready, self._idle, self._lanes
        new_future, call_soon = self.loop.create_future, self.loop.call_soon
        succeeded, monotonic = self._succeeded, time.monotonic
        while True:
            if not ready:
                waiter: asyncio.Future[None] = new_future()
                idle.append(waiter)
                try:
                    await waiter
                except asyncio.CancelledError:
                    if self._abandoning:
                        raise
                    # A handler cancelled this task and returned before the cancel landed
                    # (so on this waiter, before anyone woke it): take it back and wait
                    # again, rather than lose a worker.
                    _take_back_cancel()
                    continue
                self._waking = False
                continue
            item = ready.popleft()
            if ready and not self._waking:
                self._wake()  # the next worker for the items behind this one
            if item is None:
                return
            while item is not None:
                if item.cancelled or self._closing:
                    report(cancelled_report(item))
                else:
                    record = item.record
                    result: Attempted
                    try:
                        # The first attempt awaited here: the retry machinery (a coroutine
                        # frame of its own) only after a failure.
                        try:
                            returned = await handler(record)
                            if collect is None or returned is None:
                                result = FIRST_TRY
                            else:  # what collecting raises fails the attempt
                                result = success(1, collect(returned))
                        except BaseException as exc:
                            result = await retry_after_async(exc, handler, record, policy, collect)
                    except BaseException as exc:
                        if self._abandoning:
                            raise  # close() gave up on this item: not reported, not committed
                        result = self._escaped(exc)
                    now = monotonic()
                    if result is FIRST_TRY:
                        if not succeeded:
                            self._group_since = now
                            call_soon(self._report_succeeded)
                        succeeded.append(item.id)
                        if now - self._group_since >= GROUP_REPORT_S:
                            self._report_succeeded()
                    else:
                        # The grouped successes first: a lane's reports (and so its outputs,
                        # produced in report order) keep the order its records ran in.
                        if succeeded:
                            self._report_succeeded()
                        outcome, attempts, error, outputs = result
                        report(Report(item.id, outcome, attempts, now, error, outputs))
                if item.lane is None:
                    break  # unordered: no lane to release
                following = lanes.release(item.lane)
                if following is not None and ready and not self._closing:
                    # Other lanes' items wait: they go first (fairness). The invariant holds:
                    # the deque was not empty. Not once closing: the deque then ends in the
                    # workers' stop signals, and an item behind them would never be reported.
                    ready.append(following)
                    following = None
                item = following

    def _report_succeeded(self) -> None:
        """Report the items that succeeded on their first attempt since the last call, as one
        GroupReport (on the loop thread)."""
        succeeded = self._succeeded
        if succeeded:
            ids = succeeded.copy()
            succeeded.clear()
            self._report(GroupReport(ids, Outcome.SUCCEEDED, 1, time.monotonic()))

    @staticmethod
    def _escaped(exc: BaseException) -> Attempted:
        """The safety net (module doc). A CancelledError here that close() did not cause
        comes from a cancel() of this worker task by the handler itself: take it back, so
        the task's next items do not count as cancelled."""
        if isinstance(exc, asyncio.CancelledError):
            _take_back_cancel()
        return escaped(exc)

    def _abandon(self) -> None:
        """Cancel the worker tasks, abandoning their items (on the loop thread)."""
        self._abandoning = True
        for task in self._workers:
            task.cancel()

    def _cancel_unstarted(self) -> None:
        self._closing = True  # a lane's next items are now cancelled by the worker ending its last
        for item in self._lanes.take_waiting():  # at once: its running item may never end
            self._report(cancelled_report(item))

    def cancel_unstarted(self) -> None:
        """From now on every item not running, submitted or to come, is reported CANCELLED
        without a handler call (the process worker, told the run stops); an item
        retrying is running here, and makes its attempts. `close` does this first."""
        self.loop.call_soon_threadsafe(self._cancel_unstarted)

    async def _shutdown(self) -> None:
        self._cancel_unstarted()
        self._ready.extend([None] * len(self._workers))  # behind the ready items
        if not self._waking:
            self._wake()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._report_succeeded()

    def close(self, timeout: float) -> None:
        """Let the running items finish within `timeout` seconds; every other item submitted
        (ready, or waiting behind another in its lane) is reported CANCELLED, its handler not
        called (the Engine interface: only started work finishes). Then cancel the worker
        tasks, abandoning their items (never reported, so never committed), and stop the
        loop."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        try:
            future.result(timeout)
        except TimeoutError:
            self.loop.call_soon_threadsafe(self._abandon)
            # Let the cancelled tasks end before the loop stops (else they are destroyed
            # pending, with a warning); bounded, as a handler may ignore its cancel.
            with contextlib.suppress(TimeoutError):
                future.result(ABANDON_WAIT_S)
        # What succeeded before the end is reported, whatever happened to the rest.
        self.loop.call_soon_threadsafe(self._report_succeeded)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self.loop.close()
