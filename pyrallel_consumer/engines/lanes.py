"""The thread lane runner (plain handlers on a thread pool) and what both lane runners share;
the coroutine runner (`async def` handlers) is in coroutine_lanes.py, and the lane table both
keep in lane_table.py.

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

import threading
import time
from collections.abc import Callable, Sequence
from queue import SimpleQueue

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.attempts import (
    FIRST_TRY,
    Attempted,
    Collect,
    after_failure,
    escaped,
)
from pyrallel_consumer.engines.attempts import succeeded as success
from pyrallel_consumer.engines.base import Handler, ThreadFailure, guarded
from pyrallel_consumer.engines.lane_table import Item, Lanes
from pyrallel_consumer.engines.retry_queue import Clock, RetryQueue
from pyrallel_consumer.work import Outcome, Report

ReportSink = Callable[[Report], None]


def cancelled_report(item: Item, attempts: int = 0) -> Report:
    """The CANCELLED report of an item not run (its partition was revoked)."""
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
        on_failure: ThreadFailure | None = None,
    ) -> None:
        """`on_failure`: told when one of its threads ends on an exception (base.guarded)."""
        self._handler = handler
        self._policy = policy
        self._report = report
        self._collect = collect
        self._lanes = Lanes()
        self._lock = threading.Lock()
        self._ready: SimpleQueue[Ready | None] = SimpleQueue()  # None: a thread's stop signal
        self._closing = False  # set by close(), under `_lock`: what is not running is not run
        self.retries: RetryQueue[Ready] = RetryQueue(self._ready.put, clock, on_failure=on_failure)
        self._threads = [
            threading.Thread(
                target=guarded(self._work, f"pyrallel-worker-{i}", on_failure),
                name=f"pyrallel-worker-{i}",
                daemon=True,
            )
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
                if item.cancelled or self._closing:
                    report(cancelled_report(item, attempt - 1))
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
                    # Let waiting lanes go first, unless closing: then the queue ends in the
                    # threads' stop signals, and an item queued behind them would never be
                    # reported. Decided under the lock close() sets `_closing` under: a
                    # following item queued here is ahead of every stop signal.
                    if following is not None and not self._closing and not ready.empty():
                        ready.put((following, 1))
                        following = None
                item, attempt = following, 1

    def cancel_unstarted(self) -> None:
        """From now on every item not running, submitted or to come, is reported CANCELLED
        without a handler call, an item waiting for a retry when it is due (the process
        worker, told the run stops). Those waiting behind a running item of their lane are
        reported at once, not when it ends (it may never end: a stuck handler). `close` does
        this first."""
        with self._lock:
            self._closing = True  # a lane's next items: cancelled by the thread ending its last
            waiting = self._lanes.take_waiting()
        for item in waiting:
            self._report(cancelled_report(item))

    def close(self, timeout: float) -> None:
        """Let the running items finish within `timeout` seconds; every other item submitted
        (ready, or waiting behind another in its lane) is reported CANCELLED, its handler not
        called (the Engine interface: only started work finishes). Items waiting for a retry
        are abandoned, as is an item whose attempt fails from now on with retries left: never
        reported, so never committed (the control plane's drain, before close, is what waits
        for them); the items behind them in their lanes are reported CANCELLED."""
        self.retries.close()
        self.cancel_unstarted()
        for _ in self._threads:
            self._ready.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
