"""The process engine: handlers run in worker processes, records travel as msgpack batches.

Lanes are sharded over workers by hash, so every record of a lane goes to the same worker, which
keeps the lane's order itself (see process_worker). Per worker, at most `max_outstanding` records
are in the pipe or running; the rest wait in the parent, so a slow worker cannot swallow
unbounded work. Records go to a worker only after it said it is ready (so a worker that dies
while starting owns none). A worker that dies is detected by end-of-file on its pipe and
replaced after a backoff; its outstanding records are redone (at-least-once) under the rules of
worker_deaths: a record that kills its worker is found, counted as a failed attempt and, after
the retries, reported failed; deaths with no record to blame end the run past a budget.

Threads: the control thread calls submit/reports/wait/close; one reader thread per worker
receives results and replaces its worker when it dies. A per-worker lock guards its outstanding
table, backlogs and pipe writes.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from itertools import count
from multiprocessing.connection import Connection
from typing import Any, cast

from pyrallel_consumer.codec import load_codec
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.base import Engine, Handler, ReportQueue
from pyrallel_consumer.engines.process_worker import READY, SHUTDOWN, WorkerSpec, worker_main
from pyrallel_consumer.engines.worker_deaths import (
    MISSING_MAIN_GUARD_EXIT,
    MISSING_MAIN_GUARD_MESSAGE,
    RESTART_BUDGET,
    describe_exit,
    exit_if_importing_main,
    restart_delay,
)
from pyrallel_consumer.engines.worker_handle import (
    SPAWN_CONTEXT,
    WorkerHandle,
    start_ignoring_sigint,
)
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import OUTCOME_BY_CODE, Outcome, Report, WorkItem

log = logging.getLogger("pyrallel_consumer.process")


def _require_picklable(name: str, value: object) -> None:
    try:
        pickle.dumps(value)
    except Exception as exc:
        raise TypeError(
            f"engine='process' sends {name} to worker processes, so it must be picklable: a "
            f"module-level function or a functools.partial of one, not {value!r} ({exc})"
        ) from exc


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
            worker_init=worker_init,
            worker_exit=worker_exit,
        )
        self.max_outstanding = max(config.ipc_batch_size, 4 * config.worker_concurrency)
        self._batched = config.batch_size is not None
        self._reports = ReportQueue()
        self._workers = [WorkerHandle(i, self._batched) for i in range(config.workers)]
        self._round_robin = count()
        self._closing = threading.Event()  # set by close: no more restarts, backoffs cut short
        self._failure: WorkerError | None = None  # raised once by reports()
        self._failure_raised = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self._workers:
            self._spawn(worker)

    def _spawn(self, worker: WorkerHandle) -> None:
        parent_end, child_end = SPAWN_CONTEXT.Pipe(duplex=True)
        process = SPAWN_CONTEXT.Process(
            target=worker_main,
            args=(child_end, self._spec),
            name=f"pyrallel-worker-{worker.index}",
            daemon=True,
        )
        start_ignoring_sigint(process)
        child_end.close()  # so the parent sees end-of-file when the child dies
        worker.process, worker.conn, worker.ready = process, parent_end, False
        worker.reader = threading.Thread(
            target=self._read,
            args=(worker, parent_end),
            name=f"pyrallel-reader-{worker.index}",
            daemon=True,
        )
        worker.reader.start()

    def close(self, timeout: float) -> None:
        self._closing.set()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            with worker.lock:
                if worker.conn is not None:
                    with contextlib.suppress(OSError):  # already dead: nothing to stop
                        worker.conn.send_bytes(SHUTDOWN)
        for worker in self._workers:
            if worker.process is None:
                continue
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("worker %d did not exit in time; killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join(5)
            if worker.reader is not None:
                worker.reader.join(5)

    # ---- work ------------------------------------------------------------------------------

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        workers = self._workers
        n = len(workers)
        per_worker: dict[int, list[WorkItem[object]]] = {}
        for item in items:
            index = next(self._round_robin) % n if item.lane is None else hash(item.lane) % n
            per_worker.setdefault(index, []).append(item)
        for index, assigned in per_worker.items():
            worker = workers[index]
            # Under the lock: the worker's reader thread takes from the backlog in `_pump`
            # (unlocked adds raced with it: "pop from an empty deque" under load).
            with worker.lock:
                for item in assigned:
                    worker.backlog.add(item)
            self._pump(worker)

    def _pump(self, worker: WorkerHandle) -> None:
        """Send backlog records while the worker has room, in batches of ipc_batch_size; while it
        isolates suspects, one record at a time."""
        with worker.lock:
            if worker.given_up:
                now = time.monotonic()
                for item in worker.backlog.take(len(worker.backlog)):
                    self._reports.put(Report(item.id, Outcome.CANCELLED, 0, now))
                return
            if worker.conn is None or not worker.ready:
                return  # starting or being replaced; the reader pumps once it is ready
            while worker.suspects:
                if worker.outstanding or not worker.isolating:
                    return  # one suspect at a time, and nothing else until all are settled
                item = worker.isolating.popleft()
                if item.cancelled:
                    worker.suspects.discard(item.id)
                    self._reports.put(Report(item.id, Outcome.CANCELLED, 0, time.monotonic()))
                    continue
                self._send(worker, [item])
                return
            room = self.max_outstanding - len(worker.outstanding)
            while room > 0 and worker.backlog:
                batch: list[WorkItem[object]] = []
                for item in worker.backlog.take(min(room, self.config.ipc_batch_size)):
                    if item.cancelled:
                        self._reports.put(Report(item.id, Outcome.CANCELLED, 0, time.monotonic()))
                    else:
                        batch.append(item)
                if not batch:
                    continue
                room -= len(batch)
                if not self._send(worker, batch):
                    return

    def _send(self, worker: WorkerHandle, batch: list[WorkItem[object]]) -> bool:
        """Record `batch` as outstanding and write it to the worker (lock held). False when the
        worker died: its reader sees end-of-file and handles the outstanding records."""
        assert worker.conn is not None
        for item in batch:
            worker.outstanding[item.id] = item
        if self._batched:
            # Batch mode: each item's record is the list of records of one batch (batching.py);
            # its records travel one after the other under the item's id (codec.py).
            records = [(item.id, record) for item in batch for record in _records_of(item)]
        else:
            records = [(item.id, item.record) for item in batch]
        try:
            worker.conn.send_bytes(self.codec.encode_records(records))
        except OSError:
            return False
        return True

    def _read(self, worker: WorkerHandle, conn: Connection) -> None:
        decode = self.codec.decode_results
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                break
            if data == READY:
                with worker.lock:
                    worker.ready = True
                self._pump(worker)
                continue
            now = time.monotonic()
            with worker.lock:
                for work_id, code, attempts, error in decode(data):
                    if worker.outstanding.pop(work_id, None) is not None:
                        worker.suspects.discard(work_id)
                        attempts += worker.crashes.pop(work_id, 0)
                        outcome = OUTCOME_BY_CODE[code]
                        self._reports.put(Report(work_id, outcome, attempts, now, error))
                worker.deaths_in_a_row = worker.unexplained_in_a_row = 0
            self._pump(worker)
        if not self._closing.is_set():
            self._replace(worker)

    def _replace(self, worker: WorkerHandle) -> None:
        """The worker died: settle its outstanding records, then start another after a
        backoff, unless it keeps dying with no record to blame."""
        assert worker.process is not None
        worker.process.join(5)
        pid, exitcode = worker.process.pid, worker.process.exitcode
        cause = describe_exit(exitcode)
        with worker.lock:
            worker.conn = None
            suspects = list(worker.outstanding.values())
            worker.outstanding.clear()
            worker.deaths_in_a_row += 1
            if not worker.ready and exitcode == MISSING_MAIN_GUARD_EXIT:
                failure: WorkerError | None = WorkerError(MISSING_MAIN_GUARD_MESSAGE)
            elif suspects:
                failure = None
                self._settle(worker, suspects, pid, cause)
            else:
                worker.unexplained_in_a_row += 1
                failure = None
                if worker.unexplained_in_a_row > RESTART_BUDGET:
                    failure = WorkerError(
                        f"worker {worker.index} of engine='process' died "
                        f"{worker.unexplained_in_a_row} times in a row with no record to blame "
                        f"(last: pid {pid}, {cause}); not restarting it. Check worker_init, "
                        "the imports of the handler's module and the memory limit; the "
                        "worker's own output (stderr) says more."
                    )
            if failure is not None:
                self._give_up(worker, failure)
                return
            delay = restart_delay(worker.deaths_in_a_row)
        log.warning(
            "worker %d (pid %s) died with %s; restarting it in %.1f s (%d records to redo)",
            worker.index,
            pid,
            cause,
            delay,
            len(suspects),
        )
        if self._closing.wait(delay):
            return
        with worker.lock:
            worker.restarts += 1
        self._spawn(worker)

    def _settle(
        self, worker: WorkerHandle, suspects: list[WorkItem[object]], pid: int | None, cause: str
    ) -> None:
        """Decide what the records a dead worker owned become (lock held)."""
        if len(suspects) > 1:
            # Several were running: blame none yet, resend them one at a time (in the order
            # they were sent, so lane order holds).
            worker.isolating.extendleft(reversed(suspects))
            worker.suspects.update(item.id for item in suspects)
            return
        (item,) = suspects
        crashes = worker.crashes.get(item.id, 0) + 1
        allowed = self.config.retry.retries + 1
        if crashes < allowed:
            worker.crashes[item.id] = crashes
            worker.isolating.appendleft(item)
            worker.suspects.add(item.id)
            return
        worker.crashes.pop(item.id, None)
        worker.suspects.discard(item.id)
        error = (
            f"WorkerDied: worker process {pid} died with {cause} while handling this record "
            f"alone, {crashes} time(s) (retries={self.config.retry.retries})"
        )
        self._reports.put(Report(item.id, Outcome.FAILED, crashes, time.monotonic(), error))

    def _give_up(self, worker: WorkerHandle, failure: WorkerError) -> None:
        """Stop restarting `worker` and end the run with `failure` (lock held). Its records
        will never run: they are reported as not started, so nothing waits for them and none
        is committed. reports() raises `failure`, so it is not logged here as well."""
        worker.given_up = True
        if self._failure is None:
            self._failure = failure
        now = time.monotonic()
        abandoned = [*worker.isolating, *worker.backlog.take(len(worker.backlog))]
        worker.isolating.clear()
        worker.suspects.clear()
        for item in abandoned:
            self._reports.put(Report(item.id, Outcome.CANCELLED, 0, now))
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
        return [
            w.process.pid
            for w in self._workers
            if w.process is not None and w.process.pid and w.process.is_alive()
        ]

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


def _records_of(item: WorkItem[object]) -> list[Record]:
    return cast(list[Record], item.record)
