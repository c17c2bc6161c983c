"""The worker process of the process engine.

Receives record batches over its pipe, runs them with the same lane runners as the async engine
(threads for plain handlers, an event loop for `async def` ones), and sends results back in
micro-batches: a batch goes out when `ipc_batch_size` results are ready or
`ipc_batch_max_wait_s` after the first one, whichever comes first. An empty message from the
worker, sent once after worker_init, means "ready for records"; an empty message from the
parent means "finish and exit": the records running finish, the rest are reported CANCELLED
without a handler call (the parent sends it only after its last commit, so none of them could
be committed: running them would only add duplicates, and delay the exit); CANCEL from the
parent (the run stops: nothing more is to start) does the same without exiting; end-of-file on
the pipe means the parent died, and the worker exits at once (no orphans).

A worker ignores SIGINT: Ctrl-C in a terminal reaches the whole process group, and shutdown is
the parent's job (it drains, commits, then sends the "finish" message).

Threads in a worker: the main thread reads the pipe and submits to the lane runner; the
runner's threads (or its event loop's) run handlers and report to the ResultSender, whose one
thread alone writes results to the pipe (READY is written before that thread exists).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import groupby
from multiprocessing.connection import Connection
from operator import itemgetter
from typing import cast

from pyrallel_consumer.codec import Codec, ResultFields, load_codec
from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.base import Handler, ThreadFailure, guarded, is_coroutine_handler
from pyrallel_consumer.engines.coroutine_lanes import CoroutineLaneRunner
from pyrallel_consumer.engines.lanes import ThreadLaneRunner
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.output import collector
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Report, WorkItem

SHUTDOWN = b""  # parent -> worker: finish the records running, cancel the rest, then exit
# parent -> worker: the run stops; the records running finish, every other one
# (held now or sent later) is reported CANCELLED unrun. 0xc1 starts no msgpack message.
CANCEL = b"\xc1"
READY = b""  # worker -> parent: initialised, send records
CLOSE_TIMEOUT_S = 60.0
THREAD_FAILED_EXIT = 70  # exit status of a worker one of whose threads failed (EX_SOFTWARE)


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs; pickled to the child at spawn."""

    handler: Handler
    ordering: str
    retry: RetryPolicy
    concurrency: int
    codec: str
    ipc_batch_size: int
    ipc_batch_max_wait_s: float
    batched: bool = False  # batch mode: consecutive records with one work id are one batch
    outputs: bool = False  # the handler's return value is its outputs, sent back with its result
    worker_init: Callable[[], None] | None = None
    worker_exit: Callable[[], None] | None = None


class ResultSender:
    """Collects results from runner threads; one thread encodes and sends them in batches.

    Threads: `report` runs on every runner thread (or the event loop's), once per record; the
    sender thread alone pops and writes to the pipe; `close` runs on the worker's main thread.
    `report` takes no lock: the results wait in a deque (append and popleft are atomic with or
    without the GIL; a GroupReport's extend is appends whose order among other reports' does
    not matter), and the sender is woken through `_wake`, which `report` sets only when it
    finds it clear. A Condition held per record cost more than the rest of
    the report path (profiled: about 40% of a worker's time with a zero-work handler).

    No wake-up is lost: `report` appends before it looks at `_wake`, and the sender clears
    `_wake` before it looks at the deque, so a result appended after the sender found the
    deque empty finds `_wake` clear (and sets it) or set (and the sender's wait returns at
    once). Rejected: deciding from the deque's length seen before the append (was it empty?),
    which a reporter paused between that look and its append got wrong while the sender sent
    and fell asleep: the result then waited for the next report, forever after the last one.
    `_full` only cuts the wait for a fuller batch short (set when a report fills one): a
    missed one costs at most `max_wait`.

    A batch is full at `batch_size` results, or sooner when fewer are to come: with every
    record given to the worker (`give`) reported, nothing else could fill it, so it goes at
    once. Without that, each suspect of a worker's death sent alone (worker_deaths.py)
    waited out `max_wait` in the worker: the 400-512 suspects of a SIGKILL mid-run, then sent
    one at a time, took 1.0-1.3 s to clear, 0.15-0.17 s with it (zero-work handler, 2
    workers). Batch mode, whose workers hold a few batches each, gained too
    (process/key/batch500 about 12% faster), and a lone record in a quiet topic comes back
    sooner. The sender sets the target before its wait and `report` compares against it, as
    it compared against `batch_size`: no cost per record.
    """

    def __init__(
        self,
        conn: Connection,
        codec: Codec,
        batch_size: int,
        max_wait: float,
        on_failure: ThreadFailure | None = None,
    ) -> None:
        """`on_failure`: told when the sender thread ends on an exception (base.guarded)."""
        self._conn = conn
        self._codec = codec
        self._batch_size = batch_size
        self._max_wait = max_wait
        self._unsent: deque[ResultFields] = deque()
        self._given = 0  # records (batch mode: batches) given to the runner; the main thread's
        self._sent = 0  # results written to the pipe; the sender thread's
        self._target = batch_size  # results that make a batch full now (see the docstring)
        self._wake = threading.Event()  # results to send, or close()
        self._full = threading.Event()  # a batch filled up, or close()
        self._closed = False
        self._thread = threading.Thread(
            target=guarded(self._run, "pyrallel-results", on_failure),
            name="pyrallel-results",
            daemon=True,
        )
        self._thread.start()

    def report(self, report: Report) -> None:
        unsent = self._unsent
        before = len(unsent)
        # An Outcome is an int: it travels as its code. A GroupReport (the coroutine runner's
        # first-try successes) travels as a result per item.
        # A result with outputs has them as a fifth field (codec.py); a GroupReport never has
        # any (the runners report a success with outputs alone).
        if type(report) is GroupReport:
            outcome, attempts, error = report.outcome, report.attempts, report.error
            unsent.extend((item_id, outcome, attempts, error) for item_id in report.ids)
        elif report.outputs is None:
            unsent.append((report.id, report.outcome, report.attempts, report.error))
        else:
            unsent.append(
                (report.id, report.outcome, report.attempts, report.error, report.outputs)
            )
        if not self._wake.is_set():  # after the append: see the class docstring
            self._wake.set()
        if before < self._target <= len(unsent):
            self._full.set()

    def give(self, count: int) -> None:
        """`count` more records (batch mode: batches) go to the runner, each to be reported
        once; called by the worker's main thread before it submits them."""
        self._given += count

    def _run(self) -> None:
        unsent, wake, full = self._unsent, self._wake, self._full
        while True:
            wake.clear()  # before the deque is looked at: a result appended after sets it
            if not unsent:
                if self._closed:
                    return  # closed and flushed
                wake.wait()
                continue
            if len(unsent) < self._batch_size and not self._closed:
                # Full at batch_size results, or at all those still to come (the docstring).
                self._target = max(1, min(self._batch_size, self._given - self._sent))
                full.clear()  # before the size is read again: a batch filling up sets it
                if len(unsent) < self._target:
                    full.wait(self._max_wait)  # gather a fuller batch
            batch = [unsent.popleft() for _ in range(len(unsent))]
            try:
                self._conn.send_bytes(self._codec.encode_results(batch))
            except OSError:
                os._exit(1)  # the parent is gone
            self._sent += len(batch)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self._full.set()
        self._thread.join()


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of a worker process."""
    _ignore_sigint()
    if spec.worker_init is not None:
        spec.worker_init()
    codec = load_codec(spec.codec)
    lane_of = lane_function(spec.ordering)
    conn.send_bytes(READY)  # before the sender's thread exists: one writer at a time
    sender = ResultSender(
        conn, codec, spec.ipc_batch_size, spec.ipc_batch_max_wait_s, _thread_failed
    )
    runner_type = CoroutineLaneRunner if is_coroutine_handler(spec.handler) else ThreadLaneRunner
    collect = collector(spec.outputs)
    runner = runner_type(
        spec.handler,
        spec.retry,
        spec.concurrency,
        sender.report,
        collect=collect,
        on_failure=_thread_failed,
    )
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(1)  # the parent died: exit now rather than linger as an orphan
        if data == SHUTDOWN:
            break
        if data == CANCEL:
            runner.cancel_unstarted()
            continue
        decoded = codec.decode_records(data)
        if spec.batched:
            items = _batch_items(decoded)
        else:
            items = [
                WorkItem(work_id, lane_of(record), record, None, 0.0) for work_id, record in decoded
            ]
        sender.give(len(items))  # before they can be reported
        runner.submit(items)
    runner.close(CLOSE_TIMEOUT_S)
    sender.close()
    if spec.worker_exit is not None:
        spec.worker_exit()
    conn.close()


def _thread_failed(name: str, exc: BaseException) -> None:
    """A thread of this worker ended on an exception (engines/base.py, `guarded`): the worker
    cannot finish what it holds, so it exits at once with THREAD_FAILED_EXIT, and the parent
    treats it as any worker death (worker_deaths.py: the records in flight are failed
    attempts, the worker restarted). The traceback goes to stderr first."""
    traceback.print_exception(exc)
    print(f"pyrallel worker {os.getpid()}: thread {name} failed; exiting", file=sys.stderr)
    sys.stderr.flush()
    os._exit(THREAD_FAILED_EXIT)


def _batch_items(decoded: list[tuple[int, Record]]) -> list[WorkItem[None]]:
    """One work item per batch: its records arrive one after the other under its work id. No
    lane: the parent sends a lane's next batch only after the previous one finished."""
    items: list[WorkItem[None]] = []
    for work_id, group in groupby(decoded, key=itemgetter(0)):
        records = [record for _, record in group]
        # The runner hands `record` to the handler as is; a batch handler takes the list.
        items.append(WorkItem(work_id, None, cast(Record, records), None, 0.0))
    return items


def _ignore_sigint() -> None:
    """The parent started this process with SIGINT blocked (so it could not arrive during the
    imports); ignore it from now on, then unblock it, which discards one that is pending."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
