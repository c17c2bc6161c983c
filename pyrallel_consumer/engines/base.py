"""The one interface every engine implements, and the helpers engines share.

Engines never touch the Kafka consumer: the control plane submits `WorkItem`s and takes
`Report`s (both in `work.py`). The ordering contract lives in the lane: items that share a lane
run one at a time, in submission order; `lane=None` means unordered. That lets an engine keep
one worker loop per active lane instead of a round trip through the control plane per record.

Thread ownership: `submit`, `reports`, `wait`, `close` (and `describe`, `counters`) are called
by the control thread only. Work goes out by `submit`: the caller hands the sequence and its
items over and changes nothing in them afterwards but `WorkItem.cancelled` (work.py). Engines
run handlers on their own threads/processes and hand reports back through a `ReportQueue`.
Nothing here relies on the GIL: every hand-off is a lock, an Event, a queue, or single
operations on a deque, each atomic on its own with or without the GIL (README "Concurrency
model").
"""

from __future__ import annotations

import abc
import inspect
import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.errors import EngineError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Report, WorkItem

Handler = Callable[[Record], Any]
# Batch mode's handler (batch_size set): one call per list of records (engines/batching.py).
BatchHandler = Callable[[list[Record]], Any]
# Told when one of an engine's threads ended on an exception (`guarded`): the thread's name and
# the exception.
ThreadFailure = Callable[[str, BaseException], None]


def is_coroutine_handler(handler: object) -> bool:
    """Whether calling `handler` gives a coroutine to await: an `async def` function or method,
    a functools.partial of one, or an object whose `__call__` is `async def`. Every engine and
    wrapper decides with this one test, so a handler is awaited everywhere or nowhere. (What
    it cannot see, a plain function returning a coroutine, fails each call that returns one:
    output.HandlerReturnError.)"""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(_call_of(handler))


def is_async_generator_handler(handler: object) -> bool:
    """Whether `handler` is an async generator function, a functools.partial of one, or an
    object whose `__call__` is one: calling it runs nothing until something iterates it."""
    return inspect.isasyncgenfunction(handler) or inspect.isasyncgenfunction(_call_of(handler))


def _call_of(handler: object) -> object:
    """The `__call__` a call of `handler` runs when it is an object rather than a function or
    method (None for those)."""
    if inspect.isroutine(handler):
        return None
    return inspect.getattr_static(type(handler), "__call__", None)


def guarded(target: Callable[[], object], name: str, on_failure: ThreadFailure | None) -> Any:
    """`target` as the body of the engine thread `name`, so that its end on an exception is not
    silent. A runner loop reports every item whatever the handler does (attempts.escaped), but a
    failure outside that net (building a report, a bug) would otherwise end the thread with a
    traceback on stderr while the records it held stay in flight and the run waits for them
    until its timeout. `on_failure(name, exc)` is told instead (the engine's ReportQueue.fail,
    or a worker process's exit); None leaves `target` as it is."""
    if on_failure is None:
        return target

    def run() -> None:
        try:
            target()
        except BaseException as exc:
            on_failure(name, exc)

    return run


class ReportQueue:
    """Reports handed from runner threads to the control thread.

    A deque (append/popleft are atomic) plus an event to wake the control thread. Threads: any
    thread calls `put` and `wake`; the control thread calls `take_all` and `wait`, and is the
    only one to pop (so the count it reads is there to take: others only append).

    Why `put` sets the event only when it is clear: `Event.set` takes the event's lock and
    notifies every time (about half a microsecond, on the runner's side of the GIL, per record),
    while the control thread needs one wake-up per `take_all`, not one per report.
    No report is left without a wake-up: `put` appends before it looks at the event, and
    `take_all` clears the event before it counts the deque. When `put` finds the event set, the
    event stays set (and a wait() returns at once) until the next `take_all` clears it, and that
    take counts the deque after the clear, so it takes the report appended before the look.
    The argument orders whole operations only (an append, a look at the event, a clear, a
    count), never steps inside one, so it holds with or without the GIL.
    """

    def __init__(self) -> None:
        self._items: deque[Report] = deque()
        self._ready = threading.Event()
        self._failure: EngineError | None = None  # the first thread failure, until raised
        self._failed = threading.Lock()  # first failure wins (several threads may fail)

    def put(self, report: Report) -> None:
        self._items.append(report)
        if not self._ready.is_set():
            self._ready.set()

    def fail(self, name: str, exc: BaseException) -> None:
        """One of the engine's threads (`name`) ended on `exc`: the next take_all raises
        EngineError (once), so the run ends instead of waiting for the records that thread
        held. Any thread; the first failure wins."""
        error = EngineError(
            f"the engine's thread {name} stopped on {exc!r}: the records it held will not "
            "finish, so the run ends (they are not committed: the next run redoes them)"
        )
        error.__cause__ = exc
        with self._failed:
            if self._failure is None:
                self._failure = error
        self._ready.set()

    def take_all(self) -> list[Report]:
        """The reports put so far. Raises the EngineError of a failed thread once (`fail`)."""
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        self._ready.clear()
        items = self._items
        return [items.popleft() for _ in range(len(items))]

    def wait(self, timeout: float) -> bool:
        """Block until a report (or a wake()) is there or `timeout` seconds passed; True when
        woken, False on the timeout."""
        return self._ready.wait(timeout)

    def wake(self) -> None:
        """End a wait() with no report (the engine has news that reports() will raise)."""
        self._ready.set()


class Engine(abc.ABC):
    """Runs a handler over submitted work, honouring lanes; reports on every item."""

    name: str = "engine"

    def __init__(self, handler: Handler, config: ConsumerConfig) -> None:
        self.handler = handler
        self.config = config

    def start(self) -> None:  # noqa: B027  # optional hook: most engines start lazily
        """Allocate threads/processes. Called once before the first submit."""

    def wait_ready(self, timeout: float) -> bool:
        """Block up to `timeout` seconds until the engine can run work at once; True when it
        can, or when it failed to get there (reports() then raises the failure). The control
        plane joins the consumer group only after this, so a member whose engine is still
        starting does not hold partitions it cannot work on. Most engines are ready as soon
        as `start` returns; the process engine waits for its worker processes (their imports
        and worker_init)."""
        return True

    @abc.abstractmethod
    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        """Accept items for execution. The caller hands `items` over: it must not change the
        sequence afterwards, as an engine may keep it rather than copy it. Must not block on
        handler work beyond a short, bounded wait (the baseline waits up to its turn budget,
        so it stays the classic consume-handle-commit loop): the poll loop must keep serving
        the group."""

    @abc.abstractmethod
    def reports(self) -> list[Report]:
        """The reports available now, each item's exactly once; never blocks. Raises a
        PyrallelError (once) when the engine cannot go on, e.g. WorkerError from the process
        engine; the control plane lets it end the run. Items the engine gave up on are
        reported CANCELLED, so nothing waits for them and none is committed."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> None:
        """Block until a report is available or `timeout` seconds passed."""

    def abandon(self) -> None:  # noqa: B027  # optional hook: most engines read the flags
        """The run is stopping (a stop, an error): start nothing more. The control plane has marked
        every item in flight cancelled; an engine whose copies of the items that flag does not
        reach (a process worker's) passes it on. Called on the control thread, maybe more
        than once."""

    @abc.abstractmethod
    def close(self, timeout: float) -> None:
        """Stop accepting work, let started work finish within `timeout`, release resources.
        Work not finished by then is abandoned (the control plane does not commit it)."""

    def describe(self) -> dict[str, Any]:
        """Facts for stats() and the bench (implementation choices, sizes)."""
        return {"engine": self.name}

    def counters(self) -> dict[str, Any]:
        """Counters the engine keeps beyond the control plane's, as top-level stats() sections
        (batch mode: `batches`). Called on the control thread only, which publishes them with
        the rest of the snapshot."""
        return {}
