"""Lane bookkeeping and the two lane runners (threads for plain handlers, coroutines for async).

A lane is the unit of ordering: at most one item of a lane runs at a time, in submission order.
The runner that finishes an item of a lane takes the next item of that lane itself (a per-lane
worker loop), handing it back to the shared ready queue only when other lanes wait, for fairness.
Both runners are also used inside process-engine workers.

A runner loop never ends because of one item: whatever the handler raises is a result
(attempts.py), and anything else escaping the call is caught here and reported FAILED
(`attempts.escaped`), so no item stays in flight with nobody running it. The only exception is
close() giving up on items (a coroutine runner's unfinished ones, a thread runner's waiting for
a retry): they are abandoned, not reported.

Threads: a runner's `submit` and `close` are called by one thread (the control thread, or a
process worker's main thread); its lane table is shared with the threads that run items under
a lock (ThreadLaneRunner) or belongs to the event loop's thread (CoroutineLaneRunner), and
reports leave through the `report` callable, called on the running thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from queue import SimpleQueue

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.attempts import (
    FIRST_TRY,
    Attempted,
    Collect,
    after_failure,
    escaped,
    retry_after_async,
)
from pyrallel_consumer.engines.attempts import succeeded as success
from pyrallel_consumer.engines.base import Handler
from pyrallel_consumer.engines.retry_queue import Clock, RetryQueue
from pyrallel_consumer.work import GroupReport, Lane, Outcome, Report, WorkItem

ReportSink = Callable[[Report], None]
Item = WorkItem[object]

# How long a CoroutineLaneRunner holds back the reports of items that succeeded, to send them
# as one (its docstring): far below any commit interval or latency worth measuring.
GROUP_REPORT_S = 0.001

# How long CoroutineLaneRunner.close waits, after its timeout, for the tasks it cancelled.
ABANDON_WAIT_S = 1.0


# A lane whose running item has nobody behind it: no deque is built for it, as most lanes never
# have more than one item in flight (the control plane's max_in_flight_per_lane).
_NO_QUEUE: deque[Item] = deque()


class Lanes:
    """Items waiting behind the running item of their lane. Not thread-safe: callers lock."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # The lanes with a running item; _NO_QUEUE until an item waits behind it. Never
        # appended to: admit builds the lane's own deque first.
        self._waiting: dict[Lane, deque[Item]] = {}

    def admit(self, item: Item) -> bool:
        """True when the item may run now; otherwise it waits for its lane."""
        lane = item.lane
        if lane is None:
            return True
        waiting = self._waiting.get(lane)
        if waiting is None:
            self._waiting[lane] = _NO_QUEUE
            return True
        if waiting is _NO_QUEUE:
            self._waiting[lane] = deque((item,))
        else:
            waiting.append(item)
        return False

    def release(self, lane: Lane) -> Item | None:
        """The item of `lane` that may run now that the previous one finished, if any."""
        if lane is None:
            return None
        waiting = self._waiting[lane]
        if waiting:
            return waiting.popleft()
        del self._waiting[lane]
        return None

    def __len__(self) -> int:
        return len(self._waiting)


def _cancelled(item: Item, attempts: int = 0) -> Report:
    return Report(item.id, Outcome.CANCELLED, attempts, time.monotonic())


# A ready item and the number of its next attempt (1-based): above 1 when it comes back from
# the retry queue.
Ready = tuple[Item, int]


class ThreadLaneRunner:
    """Plain handlers on a fixed pool of threads: real parallelism when the handler releases
    the GIL (I/O, sleeps, the Cython CPU kernel).

    A failed attempt with retries left holds no thread: the item waits out its backoff in
    `retries` (a RetryQueue on `clock`, monotonic seconds) and comes back to the ready queue
    with its attempt count, while its lane stays held (the lane's next item waits behind it)
    and the thread goes on with other lanes. An item cancelled while it waits is reported
    CANCELLED, with the attempts made, when it is due, without calling the handler again.

    Threads: the pool threads run items, `retries`' timer thread puts due items back on the
    ready queue; `_lanes` is shared by the submitting thread and the pool, under `_lock`.
    """

    def __init__(
        self,
        handler: Handler,
        policy: RetryPolicy,
        threads: int,
        report: ReportSink,
        clock: Clock = time.monotonic,
        collect: Collect = None,
    ) -> None:
        self._handler = handler
        self._policy = policy
        self._report = report
        self._collect = collect
        self._lanes = Lanes()
        self._lock = threading.Lock()
        self._ready: SimpleQueue[Ready | None] = SimpleQueue()
        self.retries: RetryQueue[Ready] = RetryQueue(self._ready.put, clock)
        self._threads = [
            threading.Thread(target=self._work, name=f"pyrallel-worker-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, items: Sequence[Item]) -> None:
        with self._lock:
            admit = self._lanes.admit
            ready = [(item, 1) for item in items if item.lane is None or admit(item)]
        for entry in ready:
            self._ready.put(entry)

    def _work(self) -> None:
        handler, policy, report, collect = self._handler, self._policy, self._report, self._collect
        ready, lanes, lock = self._ready, self._lanes, self._lock
        while True:
            entry = ready.get()
            if entry is None:
                return  # close() queues one None per thread, behind the ready work
            item: Item | None
            item, attempt = entry
            while item is not None:
                if item.cancelled:
                    report(_cancelled(item, attempt - 1))
                else:
                    result: Attempted
                    try:
                        # The handler called here, not through a helper: no call per record
                        # but the handler's on the success path.
                        try:
                            returned = handler(item.record)
                            if collect is None or returned is None:
                                result = FIRST_TRY if attempt == 1 else success(attempt)
                            else:  # what collecting raises fails the attempt
                                result = success(attempt, collect(returned))
                        except BaseException as exc:
                            failure = after_failure(exc, attempt, policy)
                            if not isinstance(failure, Attempted):
                                # Back when due; the lane stays held. Dropped after close():
                                # abandoned. The thread goes on with the ready queue.
                                self.retries.add((item, attempt + 1), failure)
                                break
                            result = failure
                    except BaseException as exc:  # the safety net (module doc)
                        result = escaped(exc, attempt)
                    outcome, attempts, error, outputs = result
                    # Reported before the lane is released: the control thread gets a lane's
                    # reports, and so produces its outputs, in the order its records ran.
                    report(Report(item.id, outcome, attempts, time.monotonic(), error, outputs))
                if item.lane is None:
                    break  # unordered: no lane to release, so no lock to take
                with lock:
                    following = lanes.release(item.lane)
                if following is not None and not ready.empty():
                    ready.put((following, 1))  # let waiting lanes go first
                    following = None
                item, attempt = following, 1

    def close(self, timeout: float) -> None:
        """Let the running and the ready items finish within `timeout` seconds. Items waiting
        for a retry are abandoned, as is an item whose attempt fails from now on with retries
        left, and the items behind them in their lanes: never reported, so never committed
        (the control plane's drain, before close, is what waits for them)."""
        self.retries.close()
        for _ in self._threads:
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))


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
    ) -> None:
        self._handler = handler
        self._policy = policy
        self._report = report
        self._collect = collect
        self._concurrency = concurrency
        self._lanes = Lanes()
        self._ready: deque[Item | None] = deque()  # None: a worker's signal to end
        self._idle: deque[asyncio.Future[None]] = deque()
        self._waking = False  # a worker was woken and has not run yet
        # Items that succeeded on their first attempt, reported together (GROUP_REPORT_S).
        self._succeeded: list[int] = []
        self._group_since = 0.0  # when the first of them succeeded
        # Set by close() (on the loop thread) just before it cancels the worker tasks: from
        # then on a CancelledError out of an item abandons it instead of failing it.
        self._abandoning = False
        self.loop = new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run_loop, name="pyrallel-loop", daemon=True)
        self._thread.start()
        self._started.wait()

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._workers = [self.loop.create_task(self._work()) for _ in range(self._concurrency)]
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

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
                if item.cancelled:
                    report(_cancelled(item))
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
                if following is not None and ready:
                    # Other lanes' items wait: they go first (fairness). The invariant holds:
                    # the deque was not empty.
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

    async def _shutdown(self) -> None:
        self._ready.extend([None] * len(self._workers))  # behind the ready items
        if not self._waking:
            self._wake()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._report_succeeded()

    def close(self, timeout: float) -> None:
        """Let the items started finish within `timeout` seconds; then cancel the worker tasks,
        abandoning their items (never reported, so never committed), and stop the loop."""
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
