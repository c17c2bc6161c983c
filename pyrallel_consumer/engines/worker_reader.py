"""The reader thread of one process-engine worker: it starts the worker process, receives its
results, and when the process dies settles its records and starts another after a backoff.

One thread per worker for the engine's whole life, and the only owner of the worker's process
handle (WorkerHandle.process): it starts, joins and reads the exit code of every process of
that worker. The control thread reads only what this thread publishes under the worker's lock
(pid, restarts) and, in close(), may signal a process this thread has not reaped yet.

Nothing ends this thread silently. The normal death signal is end-of-file (or OSError) on the
pipe; anything else that goes wrong here (an undecodable result batch, an unknown outcome code,
a bug) gives the worker up: its process is killed, its records are reported ABANDONED so
nothing waits for them, and the engine's reports() raises a WorkerError naming the worker and
the exception, with that exception as `__cause__`. An OSError while starting a process (no
processes, descriptors or memory left) counts as a death with no record to blame: retried
with the same backoff, within the same restart budget.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from operator import itemgetter

from pyrallel_consumer.codec import Codec, CodecError, Result
from pyrallel_consumer.engines import worker_handle
from pyrallel_consumer.engines.base import ReportQueue
from pyrallel_consumer.engines.process_worker import READY, SHUTDOWN, WorkerSpec
from pyrallel_consumer.engines.worker_deaths import (
    MISSING_MAIN_GUARD_EXIT,
    MISSING_MAIN_GUARD_MESSAGE,
    RESTART_BUDGET,
    describe_exit,
    restart_delay,
    settle,
)
from pyrallel_consumer.engines.worker_handle import WorkerHandle
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.work import OUTCOME_BY_CODE, GroupReport, Outcome, Report

log = logging.getLogger("pyrallel_consumer.process")

REAP_TIMEOUT_S = 5.0  # for a process that closed its pipe to finish exiting

_OUTCOME_CODES = frozenset(OUTCOME_BY_CODE)
_code_of = itemgetter(1)  # a Result's outcome code
_SUCCEEDED = Outcome.SUCCEEDED.value


class _Undecodable(Exception):
    """A result batch from the worker did not decode (`error`), as opposed to a CodecError
    raised by anything else this thread calls."""

    def __init__(self, error: CodecError) -> None:
        super().__init__(str(error))
        self.error = error


class WorkerReader:
    """Runs (`run`, the thread's target) the worker processes of one WorkerHandle in turn.

    `pump(worker)` sends the worker's waiting records (the engine's, takes the lock itself);
    `ready(worker)` is called instead when a process of the worker said it is ready (the
    engine pumps, and counts the first start of each worker); `fail(error)` hands the engine
    the WorkerError its reports() raises.
    """

    def __init__(
        self,
        worker: WorkerHandle,
        spec: WorkerSpec,
        codec: Codec,
        reports: ReportQueue,
        closing: threading.Event,
        pump: Callable[[WorkerHandle], None],
        ready: Callable[[WorkerHandle], None],
        fail: Callable[[WorkerError], None],
    ) -> None:
        self.worker = worker
        self.spec = spec
        self.codec = codec
        self._reports = reports
        self._closing = closing
        self._pump = pump
        self._ready = ready
        self._fail = fail

    def run(self) -> None:
        try:
            self._supervise()
        except _Undecodable as undecodable:
            exc = undecodable.error
            # Give up rather than kill and redo: the two ends of a local pipe do not corrupt
            # bytes, so an undecodable batch means they disagree (a codec bug, mixed installs)
            # and every redo would fail alike, a slow crash loop blaming record after record.
            # Ending the run leaves the records uncommitted: the next start handles them.
            self._give_up(
                self._failure(
                    exc,
                    "sent results the parent cannot decode, so none of its results can be "
                    "trusted; the run ends and its records stay uncommitted. Set codec="
                    "'msgpack' to rule out the native codec, check that the parent and the "
                    "workers import the same pyrallel_consumer, and report it with the cause",
                )
            )
        except Exception as exc:
            self._give_up(
                self._failure(
                    exc,
                    "lost its reader thread to an unexpected error, so nothing would collect "
                    "its results; the run ends and its records stay uncommitted. This is a bug "
                    "in pyrallel_consumer: please report it with the cause",
                )
            )

    def _failure(self, exc: Exception, what: str) -> WorkerError:
        failure = WorkerError(
            f"worker {self.worker.index} of engine='process' {what} ({type(exc).__name__}: {exc})"
        )
        failure.__cause__ = exc
        return failure

    def _supervise(self) -> None:
        """Start a process, serve it until it exits, settle its death; again, until closing or
        given up."""
        worker = self.worker
        started = False
        while not self._closing.is_set():
            try:
                process, conn = worker_handle.start_worker_process(worker.index, self.spec)
            except OSError as exc:
                failure = self._unstartable(exc)
            else:
                if not self._publish(process, conn, replacement=started):
                    self._reap(process)
                    return
                started = True
                self._serve(conn)
                failure = self._on_exit(process, conn)
                if self._closing.is_set():
                    return  # a shutdown, not a death: close() abandons what is left
            if failure is not None:
                self._give_up(failure)
                return
            if self._closing.wait(restart_delay(worker.deaths_in_a_row)):
                return

    def _publish(self, process: BaseProcess, conn: Connection, replacement: bool) -> bool:
        """Make a started process the worker's current one. False when close() began (the
        process is told to exit): closing is checked under the lock close() sends SHUTDOWN
        under, so either close() sees this pipe or this thread sees close()."""
        worker = self.worker
        with worker.lock:
            worker.process, worker.conn, worker.pid, worker.ready = (
                process,
                conn,
                process.pid,
                False,
            )
            if replacement:
                worker.restarts += 1
            if not self._closing.is_set():
                return True
            worker.pid = worker.conn = None
        with contextlib.suppress(OSError):  # already dead: nothing to stop
            conn.send_bytes(SHUTDOWN)
        conn.close()
        return False

    def _serve(self, conn: Connection) -> None:
        """Receive the process's messages until its pipe ends (it exited or died)."""
        worker = self.worker
        decode = self.codec.decode_results
        while True:
            try:
                data = conn.recv_bytes()
            except (EOFError, OSError):
                return
            if data == READY:
                with worker.lock:
                    worker.ready = True
                self._ready(worker)
                continue
            try:
                results = decode(data)
                # Checked for the whole batch before any of it is applied: a batch with a code
                # this side does not know is as untrustworthy as one that did not decode.
                if not _OUTCOME_CODES.issuperset(map(_code_of, results)):
                    unknown = sorted(set(map(_code_of, results)) - _OUTCOME_CODES)
                    raise CodecError(
                        f"malformed result batch: unknown outcome code(s) {unknown} "
                        f"(known: {sorted(_OUTCOME_CODES)})"
                    )
            except CodecError as exc:
                raise _Undecodable(exc) from exc
            self._report(results)
            self._pump(worker)

    def _report(self, results: list[Result]) -> None:
        """Hand the results of records still outstanding to the control thread: each run of
        records that succeeded at their first attempt as one GroupReport, any other record as
        its own Report between the runs before and after it. So each lane's reports keep the
        order its records ran in (on_complete sees them so, and outputs are produced so), and
        a batch of successes is one report, not one per record: building and queueing a
        Report for each record was most of this thread's time (profiled), and the control
        thread then takes one object per run."""
        worker = self.worker
        now = time.monotonic()
        reports: list[Report] = []
        first_try: list[int] = []  # the current run of ids that succeeded at the first attempt
        with worker.lock:
            pop, suspects = worker.outstanding.pop, worker.suspects
            for work_id, code, attempts, error, outputs in results:
                if pop(work_id, None) is None:
                    continue  # not outstanding: a duplicate, and each record is reported once
                if suspects:
                    attempts += suspects.pop(work_id, 0)  # deaths blamed on it count too
                if code == _SUCCEEDED and attempts == 1 and error is None and outputs is None:
                    first_try.append(work_id)
                    continue
                if first_try:
                    reports.append(GroupReport(first_try, Outcome.SUCCEEDED, 1, now))
                    first_try = []
                outcome = OUTCOME_BY_CODE[code]
                reports.append(Report(work_id, outcome, attempts, now, error, outputs))
            worker.deaths_in_a_row = worker.unexplained_in_a_row = 0
        if first_try:
            reports.append(GroupReport(first_try, Outcome.SUCCEEDED, 1, now))
        put = self._reports.put
        for report in reports:
            put(report)

    def _reap(self, process: BaseProcess) -> int | None:
        """Wait for `process` to exit (killing one that closed its pipe but lingers); its exit
        code, None if even that did not end it."""
        process.join(REAP_TIMEOUT_S)
        exitcode = process.exitcode
        if exitcode is None:
            process.kill()
            process.join(REAP_TIMEOUT_S)
        return exitcode

    def _on_exit(self, process: BaseProcess, conn: Connection) -> WorkerError | None:
        """The process's pipe ended: reap it and, unless closing, settle the records it had
        outstanding. Returns the WorkerError to give up with, if it keeps dying."""
        worker = self.worker
        with worker.lock:
            worker.pid = worker.conn = None  # first: close() must not signal a reaped pid
        conn.close()
        exitcode = self._reap(process)
        if self._closing.is_set():
            return None
        pid, cause = process.pid, describe_exit(exitcode)
        now = time.monotonic()
        with worker.lock:
            dead = list(worker.outstanding.values())
            worker.outstanding.clear()
            worker.deaths_in_a_row += 1
            if not worker.ready and exitcode == MISSING_MAIN_GUARD_EXIT:
                return WorkerError(MISSING_MAIN_GUARD_MESSAGE)
            if dead:
                failed = settle(worker, dead, self.spec.retry.retries, pid, cause, now)
                if failed is not None:
                    self._reports.put(failed)
            else:
                worker.unexplained_in_a_row += 1
                if worker.unexplained_in_a_row > RESTART_BUDGET:
                    return WorkerError(
                        f"worker {worker.index} of engine='process' died "
                        f"{worker.unexplained_in_a_row} times in a row with no record to blame "
                        f"(last: pid {pid}, {cause}); not restarting it. Check worker_init, "
                        "the imports of the handler's module and the memory limit; the "
                        "worker's own output (stderr) says more."
                    )
        log.warning(
            "worker %d (pid %s) died with %s; restarting it in %.1f s (%d record(s) to redo)",
            worker.index,
            pid,
            cause,
            restart_delay(worker.deaths_in_a_row),
            len(dead),
        )
        return None

    def _unstartable(self, exc: OSError) -> WorkerError | None:
        """Starting a process failed: a death with no record to blame. Returns the WorkerError
        to give up with once that happened more often in a row than the budget allows."""
        worker = self.worker
        with worker.lock:
            worker.deaths_in_a_row += 1
            worker.unexplained_in_a_row += 1
            tries = worker.unexplained_in_a_row
        if tries <= RESTART_BUDGET:
            log.warning(
                "could not start worker %d (%s: %s); retrying in %.1f s",
                worker.index,
                type(exc).__name__,
                exc,
                restart_delay(worker.deaths_in_a_row),
            )
            return None
        failure = WorkerError(
            f"could not start worker {worker.index} of engine='process' {tries} times in a row "
            f"({type(exc).__name__}: {exc}); not retrying. The system is out of processes, "
            "file descriptors or memory: raise the limits (ulimit -u, ulimit -n), free memory "
            "or use fewer workers."
        )
        failure.__cause__ = exc
        return failure

    def _give_up(self, failure: WorkerError) -> None:
        """Stop running this worker and end the run with `failure`: kill its process, if any,
        and report its records ABANDONED (never started, or never to be finished), so nothing
        waits for them and none is committed. reports() raises `failure`, so it is not logged
        here as well."""
        worker = self.worker
        with worker.lock:
            worker.given_up = True
            process = worker.process if worker.pid is not None else None  # not reaped yet
            conn, worker.pid, worker.conn = worker.conn, None, None
            abandoned = [
                *worker.outstanding.values(),
                *worker.isolating,
                *worker.regrouping,
                *worker.unsent,
            ]
            worker.outstanding.clear()
            worker.isolating.clear()
            worker.regrouping.clear()
            worker.unsent.clear()
            worker.suspects.clear()
        now = time.monotonic()
        for item in abandoned:
            self._reports.put(Report(item.id, Outcome.ABANDONED, 0, now))
        self._fail(failure)  # before the cleanup below, which must not keep it from the engine
        if conn is not None:
            conn.close()
        if process is not None:
            process.kill()
            self._reap(process)
