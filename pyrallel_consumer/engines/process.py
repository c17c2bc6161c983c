"""The process engine: handlers run in worker processes, records travel as msgpack batches.

Lanes are sharded over workers by hash, so every record of a lane goes to the same worker, which
keeps the lane's order itself (see process_worker). Per worker, at most `max_outstanding` records
are in the pipe or running; the rest stay in the worker's backlog in the parent, so a slow
worker cannot swallow unbounded work. A worker that dies is detected by end-of-file on its
pipe, replaced, and its outstanding records are sent again to the replacement (at-least-once:
they are redone).

Threads: the control thread calls submit/reports/wait/close; one reader thread per worker
receives results. A per-worker lock guards its outstanding table, backlog and pipe writes.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from itertools import count
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from pyrallel_consumer.backlog import Backlog
from pyrallel_consumer.codec import load_codec
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.base import Engine, Handler, ReportQueue
from pyrallel_consumer.engines.process_worker import SHUTDOWN, WorkerSpec, worker_main
from pyrallel_consumer.work import OUTCOME_BY_CODE, Outcome, Report, WorkItem

log = logging.getLogger("pyrallel_consumer.process")

# spawn, not fork: the parent runs librdkafka threads, and forking a threaded process can
# deadlock the child on a lock some other thread held at fork time.
_CONTEXT = multiprocessing.get_context("spawn")


def _require_picklable(name: str, value: object) -> None:
    try:
        pickle.dumps(value)
    except Exception as exc:
        raise TypeError(
            f"engine='process' sends {name} to worker processes, so it must be picklable: a "
            f"module-level function or a functools.partial of one, not {value!r} ({exc})"
        ) from exc


class _Worker:
    """Parent-side handle of one worker process and the records it owns."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.outstanding: dict[int, WorkItem[object]] = {}  # sent, no result (in send order)
        # Assigned to this worker, not sent yet; taken round-robin across lanes so one long lane
        # cannot fill the worker's outstanding window while other lanes wait behind it.
        self.backlog: Backlog[object] = Backlog()
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.reader: threading.Thread | None = None
        self.restarts = 0


class ProcessEngine(Engine):
    name = "process"

    def __init__(
        self,
        handler: Handler,
        config: ConsumerConfig,
        worker_init: Callable[[], None] | None = None,
        worker_exit: Callable[[], None] | None = None,
    ) -> None:
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
            worker_init=worker_init,
            worker_exit=worker_exit,
        )
        self.max_outstanding = max(config.ipc_batch_size, 4 * config.worker_concurrency)
        self._reports = ReportQueue()
        self._workers = [_Worker(i) for i in range(config.workers)]
        self._round_robin = count()
        self._closing = False

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        for worker in self._workers:
            self._spawn(worker)

    def _spawn(self, worker: _Worker) -> None:
        parent_end, child_end = _CONTEXT.Pipe(duplex=True)
        process = _CONTEXT.Process(
            target=worker_main,
            args=(child_end, self._spec),
            name=f"pyrallel-worker-{worker.index}",
            daemon=True,
        )
        process.start()
        child_end.close()  # so the parent sees end-of-file when the child dies
        worker.process, worker.conn = process, parent_end
        worker.reader = threading.Thread(
            target=self._read,
            args=(worker, parent_end),
            name=f"pyrallel-reader-{worker.index}",
            daemon=True,
        )
        worker.reader.start()

    def close(self, timeout: float) -> None:
        self._closing = True
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

    def _pump(self, worker: _Worker) -> None:
        """Send backlog records while the worker has room, in batches of ipc_batch_size."""
        with worker.lock:
            if worker.conn is None:
                return  # being replaced; the reader pumps once the new worker is up
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
                for item in batch:
                    worker.outstanding[item.id] = item
                room -= len(batch)
                try:
                    worker.conn.send_bytes(
                        self.codec.encode_records([(item.id, item.record) for item in batch])
                    )
                except OSError:
                    return  # the worker died; its reader sees EOF and replaces it

    def _read(self, worker: _Worker, conn: Connection) -> None:
        decode = self.codec.decode_results
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                break
            now = time.monotonic()
            with worker.lock:
                for work_id, code, attempts, error in decode(data):
                    if worker.outstanding.pop(work_id, None) is not None:
                        outcome = OUTCOME_BY_CODE[code]
                        self._reports.put(Report(work_id, outcome, attempts, now, error))
            self._pump(worker)
        if not self._closing:
            self._replace(worker)

    def _replace(self, worker: _Worker) -> None:
        """The worker died: start another and give it the dead one's records, in order."""
        assert worker.process is not None
        worker.process.join(5)
        log.warning(
            "worker %d (pid %s) died with exit code %s; restarting it and redoing %d records",
            worker.index,
            worker.process.pid,
            worker.process.exitcode,
            len(worker.outstanding),
        )
        with worker.lock:
            worker.conn = None
            # Lane order holds: the outstanding records of a lane precede its backlog ones.
            backlog = worker.backlog
            worker.backlog = Backlog()
            for item in [*worker.outstanding.values(), *backlog.take(len(backlog))]:
                worker.backlog.add(item)
            worker.outstanding.clear()
            worker.restarts += 1
        self._spawn(worker)
        self._pump(worker)

    def reports(self) -> list[Report]:
        return self._reports.take_all()

    def wait(self, timeout: float) -> None:
        self._reports.wait(timeout)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._workers if w.process is not None and w.process.pid]

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
