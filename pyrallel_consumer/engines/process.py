"""The process engine: handlers run in worker processes, records travel as msgpack batches.

Lanes are sharded over workers by hash, so every record of a lane goes to the same worker, which
keeps the lane's order itself (see process_worker). Per worker, at most `max_outstanding` records
are in the pipe or running; the rest wait in the parent, so a slow worker cannot swallow unbounded
work. Records go to a worker only after it said it is ready (so a worker that dies while starting
owns none). A worker that dies is detected by end-of-file on its pipe and replaced after a backoff;
its outstanding records are redone (at-least-once) under the rules of worker_deaths: a record that
kills its worker is found, counted as a failed attempt and, after the retries, reported failed;
deaths with no record to blame end the run past a budget.

Rejected: placing a lane no worker holds on the least loaded worker (by records, or by lanes held),
the lane staying with its worker while that holds some of its records. Busy lanes are always held,
so each stays where it was first placed, on the loads of that moment: with a pure-Python CPU
handler (2 workers, 100 keys, 20,000 records, the fake client) the workers split the records 76/24
in runs where the hash split them 54/46, at 0.5-0.9 of the hash's throughput.

Threads: the control thread calls submit/reports/wait/close; one reader thread per worker
(worker_reader.py) starts its processes, receives results, replaces a process that dies and
gives the worker up, ending the run with WorkerError, when it cannot go on. A per-worker lock
guards its outstanding table, unsent queue and pipe writes; the process handle belongs to the
reader thread alone (worker_handle.py). Reports go through a ReportQueue (base.py); the first
reader to fail sets `_failure` under `_failure_lock`, which reports() raises on the control
thread; `_closing` is an Event the control thread sets and the readers wait on, `_started` one
the readers set (every worker ready once, or one given up) and wait_ready waits on.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, cast

from pyrallel_consumer.codec import load_codec
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.base import Engine, Handler, ReportQueue
from pyrallel_consumer.engines.process_worker import CANCEL, SHUTDOWN, WorkerSpec
from pyrallel_consumer.engines.worker_deaths import exit_if_importing_main
from pyrallel_consumer.engines.worker_handle import WorkerHandle
from pyrallel_consumer.engines.worker_reader import WorkerReader
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome, Report, WorkItem

log = logging.getLogger("pyrallel_consumer.process")


def _require_picklable(name: str, value: object) -> None:
    try:
        pickle.dumps(value)
    except Exception as exc:
        raise TypeError(
            f"engine='process' sends {name} to worker processes, so it must be picklable: a "
            f"module-level function or a functools.partial of one, not {value!r} ({exc})"
        ) from exc


# Pipe messages of records one worker may have outstanding at once (outstanding_window).
MESSAGES_IN_FLIGHT = 2
# The least close() waits for its workers, whatever the shutdown left of its deadline: time for
# a worker with nothing running to exit by itself and run its worker_exit hook (a bench profile
# is written there) rather than be killed.
EXIT_GRACE_S = 1.0


def outstanding_window(config: ConsumerConfig) -> int:
    """Records one worker may have in its pipe or running (its window): the largest of
    MESSAGES_IN_FLIGHT full pipe messages, 4 per runner thread so none idles between messages,
    and twice the lane cap.

    Why several messages: the worker sends a result batch once `ipc_batch_size` results are
    ready, and only the results free the window. With one message's worth, the worker idled
    from sending a result batch until the parent had read it and sent the next records, and the
    parent woke once per round trip. With 2, a worker always has the next message queued.
    Measured with `python -m bench.overhead --paths process` (zero-work handler, one broker,
    2 cores, 3 alternated runs): 0.077 of a raw consume() loop with one message, 0.092 with 4
    (of 64 records each).

    Why messages of 256 records (`ipc_batch_size`), two of them: every message costs each side
    a few thread wake-ups (the pipe's reader, the worker's runner, its result sender, the
    control thread), the same for 1 record or 256. Measured with `python -m bench.overhead
    --num-messages 200000 --rounds 3 --paths process,process/unordered`, key order, two sets of
    runs, records/s: 64 x 4 messages 164k and 158k; 64 x 16 (the same window as 256 x 4, small
    messages) 170k and 177k; 256 x 2 183k and 191k; 256 x 4 196k and 183k; 512 x 2 164k and
    138k (a worker idles while a message that size goes round). The sleep (5 ms, 1 ms) and
    cpu workloads of `python -m bench` were as fast or faster with 256 x 2 (bench/README).
    The price: a worker that dies has up to this many records to redo (worker_deaths.py).

    Why twice the lane cap: a worker sends its records in submission order, so a lane's records
    can follow one another there (one lane had records when the control plane took them); at
    most max_in_flight_per_lane of them, so with this window a slow or stuck lane holds at most
    half of it. Not counted where the cap does not apply to the engine's items: `unordered`
    records have no lane, and batch mode's items are batches (the cap counts records there).
    """
    window = max(MESSAGES_IN_FLIGHT * config.ipc_batch_size, 4 * config.worker_concurrency)
    if config.ordering == "unordered" or config.batch_size is not None:
        return window
    return max(window, 2 * config.max_in_flight_per_lane)


class ProcessEngine(Engine):
    name = "process"

    def __init__(
        self,
        handler: Handler,
        config: ConsumerConfig,
        worker_init: Callable[[], None] | None = None,
        worker_exit: Callable[[], None] | None = None,
    ) -> None:
        exit_if_importing_main()
        super().__init__(handler, config)
        for name, value in (
            ("handler", handler),
            ("worker_init", worker_init),
            ("worker_exit", worker_exit),
        ):
            _require_picklable(name, value)
        self.codec = load_codec(config.codec)
        self._spec = WorkerSpec(
            handler=handler,
            ordering=config.ordering,
            retry=config.retry,
            concurrency=config.worker_concurrency,
            codec=self.codec.name,
            ipc_batch_size=config.ipc_batch_size,
            ipc_batch_max_wait_s=config.ipc_batch_max_wait_s,
            batched=config.batch_size is not None,
            outputs=config.outputs,
            worker_init=worker_init,
            worker_exit=worker_exit,
        )
        self.max_outstanding = outstanding_window(config)
        self._batched = config.batch_size is not None
        self._reports = ReportQueue()
        self._workers = [WorkerHandle(i) for i in range(config.workers)]
        self._next_unordered = 0  # the worker the next unordered item goes to (control thread)
        self._closing = threading.Event()  # set by close: no more restarts, backoffs cut short
        self._abandoned = False  # abandon() told the workers (control thread only)
        self._failure: WorkerError | None = None  # raised once by reports()
        self._failure_lock = threading.Lock()  # reader threads may fail at once
        self._failure_raised = False
        # Workers that have not been ready once yet (reader threads remove theirs, under
        # _ready_lock); `_started` is set when none is left, or a worker was given up.
        self._never_ready = {worker.index for worker in self._workers}
        self._ready_lock = threading.Lock()
        self._started = threading.Event()

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self._workers:
            reader = WorkerReader(
                worker,
                self._spec,
                self.codec,
                self._reports,
                self._closing,
                self._pump,
                self._on_ready,
                self._fail,
            )
            worker.reader = threading.Thread(
                target=reader.run, name=f"pyrallel-reader-{worker.index}", daemon=True
            )
            worker.reader.start()

    def wait_ready(self, timeout: float) -> bool:
        """Block up to `timeout` seconds until every worker process has started (imported the
        handler's module and run worker_init) and said it is ready, or one was given up (its
        WorkerError is then raised by reports()). A worker restarted later does not count:
        its records wait in the parent meanwhile."""
        return self._started.wait(timeout)

    def _on_ready(self, worker: WorkerHandle) -> None:
        """A worker's process said it is ready (its reader thread): send it its records, and
        note the worker's first start for wait_ready."""
        if not self._started.is_set():
            with self._ready_lock:
                self._never_ready.discard(worker.index)
                if not self._never_ready:
                    self._started.set()
        self._pump(worker)

    def abandon(self) -> None:
        """Tell every worker to start nothing more (CANCEL, process_worker.py): the records
        it holds that are not running come back CANCELLED. Those still here are cancelled
        already (the control plane's flags): `_pump_locked` reports them so."""
        if not self._abandoned:
            self._abandoned = True
            self._tell_workers(CANCEL)

    def _tell_workers(self, message: bytes) -> None:
        """Send `message` to every worker whose pipe is open (a dead worker's reader handles
        its records)."""
        for worker in self._workers:
            with worker.lock:
                if worker.conn is not None:
                    with contextlib.suppress(OSError):
                        worker.conn.send_bytes(message)

    def close(self, timeout: float) -> None:
        """Tell every worker to finish (its running records end, the rest it holds are
        reported CANCELLED unrun: process_worker.py), wait up to `timeout` seconds, at least
        EXIT_GRACE_S, for their reader threads (each reaps its own process), then kill the
        workers still running."""
        self._closing.set()
        deadline = time.monotonic() + max(timeout, EXIT_GRACE_S)
        self._tell_workers(SHUTDOWN)
        for worker in self._workers:
            if worker.reader is not None:
                worker.reader.join(max(0.0, deadline - time.monotonic()))
        for worker in self._workers:
            if worker.reader is not None and worker.reader.is_alive():
                if worker.kill():
                    log.warning("worker %d did not exit in time; killed it", worker.index)
                worker.reader.join(5)

    # ---- work ------------------------------------------------------------------------------

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        workers = self._workers
        n = len(workers)
        if n == 1:
            self._assign(workers[0], items)
            return
        assigned: list[list[WorkItem[object]]] = [[] for _ in range(n)]
        unordered: list[WorkItem[object]] = []
        for item in items:
            lane = item.lane
            if lane is None:
                unordered.append(item)
            else:
                assigned[hash(lane) % n].append(item)
        if unordered:
            # Dealt round-robin across the workers, continuing from the last call: the
            # unordered item j goes to worker (start + j) % n.
            start = self._next_unordered
            for k in range(n):
                assigned[(start + k) % n].extend(unordered[k::n])
            self._next_unordered = (start + len(unordered)) % n
        for worker, mine in zip(workers, assigned, strict=True):
            if mine:
                self._assign(worker, mine)

    def _assign(self, worker: WorkerHandle, items: Sequence[WorkItem[object]]) -> None:
        """Queue `items` for the worker and send what it has room for."""
        with worker.lock:  # the worker's reader thread sends from `unsent` too (in `_pump`)
            worker.unsent.extend(items)
            self._pump_locked(worker)

    def _pump(self, worker: WorkerHandle) -> None:
        """Send unsent records while the worker has room (see _pump_locked)."""
        with worker.lock:
            self._pump_locked(worker)

    def _pump_locked(self, worker: WorkerHandle) -> None:
        """Send unsent records while the worker has room, in batches of ipc_batch_size; while it
        sends suspects, in groups or one at a time (worker_deaths; worker's lock held)."""
        unsent = worker.unsent
        if worker.given_up:
            now = time.monotonic()
            for item in unsent:
                self._reports.put(Report(item.id, Outcome.CANCELLED, 0, now))
            unsent.clear()
            return
        if worker.conn is None or not worker.ready:
            return  # starting or being replaced; the reader pumps once it is ready
        while worker.suspects:
            if worker.outstanding or not (worker.isolating or worker.regrouping):
                return  # one group (or one suspect) at a time, nothing else until all settled
            group = self._suspects_to_send(worker)
            if group:  # else every one taken was cancelled: look again
                self._send(worker, group)
                return
        room = self.max_outstanding - len(worker.outstanding)
        batch_size, take = self.config.ipc_batch_size, unsent.popleft
        while room > 0 and unsent:
            count = min(room, batch_size, len(unsent))
            if count == len(unsent):  # all of it: copied in C, not popped one by one
                batch = list(unsent)
                unsent.clear()
            else:
                batch = [take() for _ in range(count)]
            if any(map(_is_cancelled, batch)):
                now = time.monotonic()
                for item in batch:
                    if item.cancelled:
                        self._reports.put(Report(item.id, Outcome.CANCELLED, 0, now))
                batch = [item for item in batch if not item.cancelled]
                if not batch:
                    continue
            room -= len(batch)
            if not self._send(worker, batch):
                return

    def _suspects_to_send(self, worker: WorkerHandle) -> list[WorkItem[object]]:
        """The next suspects to send (worker_deaths): one from `isolating`, else up to
        worker_concurrency from `regrouping`; the cancelled ones on the way are reported
        CANCELLED and forgotten. Empty when none is left (worker's lock held)."""
        queue, size = worker.isolating, 1
        if not queue:
            queue, size = worker.regrouping, self.config.worker_concurrency
        group: list[WorkItem[object]] = []
        while queue and len(group) < size:
            item = queue.popleft()
            if item.cancelled:
                del worker.suspects[item.id]  # its crash count with it
                self._reports.put(Report(item.id, Outcome.CANCELLED, 0, time.monotonic()))
                continue
            group.append(item)
        return group

    def _send(self, worker: WorkerHandle, batch: list[WorkItem[object]]) -> bool:
        """Record `batch` as outstanding and write it to the worker (lock held). False when the
        worker died: its reader sees end-of-file and handles the outstanding records."""
        assert worker.conn is not None
        # map/zip rather than loops: per record, C calls instead of a round of bytecode.
        ids = list(map(_id_of, batch))
        worker.outstanding.update(zip(ids, batch, strict=True))
        if self._batched:
            # Batch mode: each item's record is the list of records of one batch (batching.py);
            # its records travel one after the other under the item's id (codec.py).
            records = [(item.id, record) for item in batch for record in _records_of(item)]
        else:
            records = list(zip(ids, map(_record_of, batch), strict=True))
        try:
            worker.conn.send_bytes(self.codec.encode_records(records))
        except OSError:
            return False
        return True

    def _fail(self, failure: WorkerError) -> None:
        """A reader thread gave its worker up (any reader thread): keep the first failure for
        reports() to raise, and wake the control thread."""
        with self._failure_lock:
            if self._failure is None:
                self._failure = failure
        self._started.set()  # wait_ready: nothing more to wait for; reports() raises it
        self._reports.wake()

    def reports(self) -> list[Report]:
        """Reports available now. Raises WorkerError once when workers cannot be kept running
        (see worker_deaths); the reports of that moment follow on the next call."""
        if self._failure is not None and not self._failure_raised:
            self._failure_raised = True
            raise self._failure
        return self._reports.take_all()

    def wait(self, timeout: float) -> None:
        self._reports.wait(timeout)

    def worker_pids(self) -> list[int]:
        """Pids of the worker processes running now, as their reader threads published them
        (never asked of the processes: the reader threads own them)."""
        return [pid for pid in (w.pid for w in self._workers) if pid is not None]

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "workers": len(self._workers),
            "worker_concurrency": self.config.worker_concurrency,
            "codec": self.codec.name,
            "max_outstanding_per_worker": self.max_outstanding,
            "worker_restarts": sum(w.restarts for w in self._workers),
            "worker_pids": self.worker_pids(),
        }


_is_cancelled = attrgetter("cancelled")
_id_of = attrgetter("id")
_record_of = attrgetter("record")


def _records_of(item: WorkItem[object]) -> list[Record]:
    return cast(list[Record], item.record)
