"""The parent's side of one process-engine worker: its handle (process, pipe, the records it
owns) and how a worker process is started. Used by the process engine (process.py), under the
worker's lock as that module's docstring says."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from pyrallel_consumer.backlog import Backlog, batch_bytes, record_bytes
from pyrallel_consumer.work import WorkItem

# spawn, not fork: the parent runs librdkafka threads, and forking a threaded process can
# deadlock the child on a lock some other thread held at fork time.
SPAWN_CONTEXT = multiprocessing.get_context("spawn")


class WorkerHandle:
    """Parent-side handle of one worker process and the records it owns."""

    def __init__(self, index: int, batched: bool) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.outstanding: dict[int, WorkItem[object]] = {}  # sent, no result (in send order)
        # Assigned to this worker, not sent yet; taken round-robin across lanes so one long lane
        # cannot fill the worker's outstanding window while other lanes wait behind it.
        self.backlog: Backlog[object] = Backlog(size_of=batch_bytes if batched else record_bytes)
        # Suspects of a death that had several records outstanding: sent one at a time, before
        # anything in `backlog`, until each completed or was blamed (see worker_deaths).
        self.isolating: deque[WorkItem[object]] = deque()
        self.suspects: set[int] = set()  # work ids isolated and not settled yet
        self.crashes: dict[int, int] = {}  # work id -> deaths blamed on it so far
        self.process: BaseProcess | None = None
        self.conn: Connection | None = None
        self.reader: threading.Thread | None = None
        self.ready = False  # the current process said it is ready for records
        self.given_up = False  # dead for good (see ProcessEngine._give_up)
        self.restarts = 0
        self.deaths_in_a_row = 0  # since a record last completed in this worker
        self.unexplained_in_a_row = 0  # deaths with no record to blame, since one completed


def start_ignoring_sigint(process: BaseProcess) -> None:
    """Start `process` with SIGINT blocked, so it is never interrupted, even while it imports.

    Ctrl-C in a terminal sends SIGINT to the whole process group; shutdown is the parent's job
    (drain, commit, then SHUTDOWN to each worker), so a worker must not die of it. The child
    inherits this thread's signal mask across fork and exec; worker_main then ignores SIGINT
    and unblocks it. Ignoring it in the parent instead would need the main thread, and a
    replacement worker is started from a reader thread.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: no process groups to worry about
        process.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
