"""The parent's side of one process-engine worker: its handle (process, pipe, the records it
owns) and how a worker process is started. Used by the process engine (process.py) and the
worker's reader thread (worker_reader.py), under the worker's lock as process.py says."""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import deque
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from pyrallel_consumer.engines.process_worker import WorkerSpec, worker_main
from pyrallel_consumer.work import WorkItem

# spawn, not fork: the parent runs librdkafka threads, and forking a threaded process can
# deadlock the child on a lock some other thread held at fork time.
SPAWN_CONTEXT = multiprocessing.get_context("spawn")


class WorkerHandle:
    """Parent-side handle of one worker process and the records it owns.

    Ownership: `process` belongs to the worker's reader thread, the only thread that starts,
    joins or asks it for liveness and exit code (two threads reaping one child race: the loser
    reads its exit cause as unknown). Everything else is guarded by `lock`; `pid` and
    `restarts` are the facts the reader publishes for the control thread (describe()).
    """

    def __init__(self, index: int) -> None:
        self.index = index
        self.lock = threading.Lock()
        self.outstanding: dict[int, WorkItem[object]] = {}  # sent, no result (in send order)
        # Assigned to this worker, not sent yet, in submission order. First in, first out: the
        # control plane already hands records over round-robin across lanes, a lane holding at
        # most max_in_flight_per_lane of them, so the order it submits in spreads the window
        # over the lanes. Rejected: a second round-robin Backlog here, which cost 0.9 us per
        # record (add and take, measured) for the order the submissions already have.
        self.unsent: deque[WorkItem[object]] = deque()
        # Suspects of a death that had several records outstanding, sent again before anything
        # in `unsent` until each completed or was blamed (see worker_deaths): in groups of
        # worker_concurrency (`regrouping`), and one at a time those outstanding when the
        # worker died again during a group (`isolating`, sent first).
        self.regrouping: deque[WorkItem[object]] = deque()
        self.isolating: deque[WorkItem[object]] = deque()
        # Work id -> deaths blamed on it so far (0: isolated, not blamed yet), for each suspect
        # not settled yet. One map, so the count leaves with the suspect on every path (result,
        # failure, cancel, give up); a separate count map once outlived cancelled suspects.
        # At most max_outstanding entries: only a death makes suspects, and while there are
        # suspects at most one group of them is outstanding.
        self.suspects: dict[int, int] = {}
        self.process: BaseProcess | None = None  # the reader thread's (see above)
        self.conn: Connection | None = None  # None while starting, replaced or given up
        self.reader: threading.Thread | None = None
        self.pid: int | None = None  # of the live process; None once it exited (published)
        self.ready = False  # the current process said it is ready for records
        self.given_up = False  # dead for good (see WorkerReader._give_up)
        self.restarts = 0  # replacement processes started (published)
        self.deaths_in_a_row = 0  # since a record last completed in this worker
        self.unexplained_in_a_row = 0  # deaths with no record to blame, since one completed

    def kill(self) -> bool:
        """Send SIGKILL to the live process, if any; True if one was signalled. For close() on
        the control thread: the reader clears `pid` under the lock before it reaps the process,
        so a pid seen here is not reaped yet and cannot belong to another process."""
        with self.lock:
            if self.pid is None or self.process is None:
                return False
            self.process.kill()  # a signal only: neither polls nor reaps (reader's job)
            return True


def start_worker_process(index: int, spec: WorkerSpec) -> tuple[BaseProcess, Connection]:
    """Start worker `index` running `worker_main(spec)`; returns the process and the parent's
    end of its pipe. Raises OSError when the system refuses (no processes, descriptors or
    memory left), with both pipe ends closed."""
    parent_end, child_end = SPAWN_CONTEXT.Pipe(duplex=True)
    try:
        process = SPAWN_CONTEXT.Process(
            target=worker_main,
            args=(child_end, spec),
            name=f"pyrallel-worker-{index}",
            daemon=True,
        )
        start_ignoring_sigint(process)
    except BaseException:
        parent_end.close()
        raise
    finally:
        child_end.close()  # the child has its copy: the parent sees end-of-file when it dies
    return process, parent_end


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
