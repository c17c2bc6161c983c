"""The process engine's reader threads never fail silently (no Kafka: items submitted straight
to the engine; faults injected through the engine's own codec and process starter).

- A result batch that does not decode, or names an outcome code this side does not know, or
  any other error on a reader thread: the worker is given up, its process killed, its records
  reported ABANDONED, and reports() raises WorkerError with the original error as the cause.
- Starting a worker process fails with OSError: retried within the restart budget, then
  WorkerError naming the OSError.
- The control thread never asks a worker process for its liveness or exit code (the reader
  thread reaps it), and the suspects of worker deaths never outgrow the outstanding window.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import pytest
from engine_support import WAIT_S, collect, make_items, process_engine

from pyrallel_consumer.codec import CodecError, Result
from pyrallel_consumer.engines import worker_handle
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.process import ProcessEngine
from pyrallel_consumer.engines.process_worker import WorkerSpec
from pyrallel_consumer.engines.worker_deaths import RESTART_BUDGET, settle
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


def noop(record: Record) -> None:
    time.sleep(0.001)


def worker_error(engine: ProcessEngine) -> WorkerError:
    """The WorkerError reports() raises, within WAIT_S."""
    deadline = time.monotonic() + WAIT_S
    with pytest.raises(WorkerError) as raised:
        while time.monotonic() < deadline:
            engine.reports()
            engine.wait(0.05)
    return raised.value


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---- results the parent cannot trust ------------------------------------------------------------


def undecodable(data: bytes) -> list[Result]:
    raise CodecError("malformed result batch: injected")


def unknown_outcome(data: bytes) -> list[Result]:
    return [Result(1, 9, 1, None)]


def broken(data: bytes) -> list[Result]:
    raise RuntimeError("injected bug")


@pytest.mark.parametrize(
    ("decode", "cause", "says"),
    [
        (undecodable, CodecError, "cannot decode"),
        (unknown_outcome, CodecError, "unknown outcome code(s) [9]"),
        (broken, RuntimeError, "unexpected error"),
    ],
)
def test_a_reader_that_cannot_go_on_gives_the_worker_up_with_worker_error(
    engines: list[Engine],
    decode: Callable[[bytes], list[Result]],
    cause: type[Exception],
    says: str,
) -> None:
    engine = process_engine(noop, engines)
    engine.codec = dataclasses.replace(engine.codec, decode_results=decode)
    engine.start()
    engine.submit(make_items(10, keys=4))
    error = worker_error(engine)
    assert isinstance(error.__cause__, cause)
    assert says in str(error) and "worker 0" in str(error)
    # Every record is reported exactly once: none completed (their results were not trusted),
    # so all are ABANDONED and nothing waits for them.
    reports = collect(engine, 10)
    assert {done.outcome for done in reports.values()} == {Outcome.ABANDONED}
    # The worker is not left running, and records submitted later are cancelled too.
    assert engine.worker_pids() == []
    engine.submit(make_items(2, keys=4, first_id=100))
    assert set(collect(engine, 2)) == {100, 101}


def test_the_worker_process_is_killed_when_given_up(engines: list[Engine]) -> None:
    engine = process_engine(noop, engines)
    engine.codec = dataclasses.replace(engine.codec, decode_results=undecodable)
    engine.start()
    wait_until(lambda: bool(engine.worker_pids()), "the worker to start")
    (pid,) = engine.worker_pids()
    engine.submit(make_items(3, keys=4))
    worker_error(engine)
    wait_until(lambda: gone(pid), f"worker process {pid} to be gone")


# ---- processes that cannot be started -------------------------------------------------------


def failing_starts(monkeypatch: pytest.MonkeyPatch, failures: int | None) -> Callable[[], int]:
    """Make the next `failures` process starts (None: all) raise OSError; returns a count of
    the attempts so far."""
    real = worker_handle.start_worker_process
    attempts = 0

    def start(index: int, spec: WorkerSpec) -> tuple[BaseProcess, Connection]:
        nonlocal attempts
        attempts += 1
        if failures is None or attempts <= failures:
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real(index, spec)

    monkeypatch.setattr(worker_handle, "start_worker_process", start)
    return lambda: attempts


def test_process_starts_that_fail_are_retried_within_the_budget(
    engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts = failing_starts(monkeypatch, RESTART_BUDGET)
    engine = process_engine(noop, engines)
    engine.start()
    engine.submit(make_items(20, keys=4))
    reports = collect(engine, 20)
    assert {done.outcome for done in reports.values()} == {Outcome.SUCCEEDED}
    assert attempts() == RESTART_BUDGET + 1


def test_a_worker_that_cannot_be_replaced_ends_in_worker_error(
    engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = process_engine(noop, engines)
    engine.start()
    wait_until(lambda: bool(engine.worker_pids()), "the worker to start")
    (pid,) = engine.worker_pids()
    attempts = failing_starts(monkeypatch, None)
    os.kill(pid, signal.SIGKILL)
    wait_until(lambda: not engine.worker_pids(), "the reader to see the death")
    engine.submit(make_items(3, keys=4))
    error = worker_error(engine)
    assert isinstance(error.__cause__, OSError)
    assert "could not start worker 0" in str(error) and "ulimit" in str(error)
    assert attempts() == RESTART_BUDGET  # the death itself was the first of the budget
    reports = collect(engine, 3)
    assert {done.outcome for done in reports.values()} == {Outcome.ABANDONED}


# ---- one owner per process handle; bounded suspects ---------------------------------------------


def test_only_reader_threads_ask_worker_processes_how_they_are(
    engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads reaping one child race, and the loser reads its exit cause as unknown: the
    control thread (describe, close) must leave the handles to the reader threads."""
    strangers: list[str] = []

    def watched(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(process: BaseProcess, *args: Any) -> Any:
            thread = threading.current_thread().name
            if not thread.startswith("pyrallel-reader-"):
                strangers.append(f"{name} from {thread}")
            return real(process, *args)

        return call

    monkeypatch.setattr(BaseProcess, "is_alive", watched("is_alive", BaseProcess.is_alive))
    monkeypatch.setattr(BaseProcess, "join", watched("join", BaseProcess.join))
    exitcode = BaseProcess.exitcode.fget  # type: ignore[attr-defined]
    monkeypatch.setattr(BaseProcess, "exitcode", property(watched("exitcode", exitcode)))
    engine = process_engine(noop, engines, workers=2)
    engine.start()
    engine.submit(make_items(20, keys=4))
    while len(engine.worker_pids()) < 2:
        engine.describe()
        time.sleep(0.01)
    collect(engine, 20)
    described = engine.describe()
    assert len(described["worker_pids"]) == 2
    engine.close(10.0)
    assert engine.worker_pids() == []
    assert strangers == []


class DiscardingPipe:
    """Stands in for a worker's pipe: takes record batches, answers nothing."""

    def send_bytes(self, data: bytes) -> None:
        pass


def test_suspects_and_their_crash_counts_stay_bounded(engines: list[Engine]) -> None:
    """10,000 distinct suspects, each isolated after a death (alone: blamed once; in pairs:
    not blamed) and then cancelled (partition revoked) before its resend: what the worker's
    handle tracks stays within the outstanding window."""
    engine = process_engine(noop, engines)
    worker = engine._workers[0]
    worker.conn, worker.ready = DiscardingPipe(), True  # type: ignore[assignment]
    suspects = 10_000
    work_id = deaths = 0
    while work_id < suspects:
        together = 1 + deaths % 2  # alone, then a pair, in turn
        deaths += 1
        batch = make_items(together, keys=4, first_id=work_id + 1)
        work_id += together
        engine.submit(batch)  # cancels the previous suspects on its way, then sends these
        with worker.lock:
            dead = list(worker.outstanding.values())
            worker.outstanding.clear()
            assert settle(worker, dead, 1, 1234, "signal SIGKILL", 0.0) is None
        for item in batch:
            item.cancelled = True
        engine.reports()
    engine._pump(worker)  # the last suspects' turn
    bound = engine.max_outstanding
    sizes = {name: len(value) for name, value in vars(worker).items() if hasattr(value, "__len__")}
    assert all(size <= bound for size in sizes.values()), sizes
    assert not worker.suspects
