"""The process engine when its workers die (no Kafka: items submitted straight to the engine).

A record that kills its worker is isolated, blamed, retried and finally reported FAILED naming
the exit code; the others complete, and a record that was merely running beside it when the
worker died is never blamed. Workers dying with no record to blame end in WorkerError once the
restart budget is spent.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from engine_support import WAIT_S, collect, make_items, process_engine

from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.process import ProcessEngine
from pyrallel_consumer.engines.worker_deaths import (
    RESTART_BACKOFF_MAX_S,
    describe_exit,
    restart_delay,
    settle,
)
from pyrallel_consumer.engines.worker_handle import WorkerHandle
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

POISON_OFFSET = 7


def exit_on_poison(record: Record) -> None:
    if record.offset == POISON_OFFSET:
        os._exit(3)
    time.sleep(0.001)


def exit_at_start() -> None:
    os._exit(5)


def wait_for_file(path: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.005)


def exit_beside_an_older_record(directory: str, record: Record) -> None:
    """Offset 0 (the oldest) runs until offset 1 has killed the worker under it; offset 1
    kills the worker, but only once offset 0 is surely running beside it."""
    running, poisoned = Path(directory, "oldest-running"), Path(directory, "poisoned")
    if record.offset == 0:
        running.touch()
        wait_for_file(poisoned)
    elif record.offset == 1:
        wait_for_file(running)
        poisoned.touch()
        os._exit(3)


def test_describe_exit_names_codes_and_signals() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "signal SIGKILL"
    assert describe_exit(None) == "an unknown cause"


def test_restart_delay_doubles_up_to_a_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays[1] == 2 * delays[0]
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_BACKOFF_MAX_S


def make_engine(engines: list[Engine], **options: Any) -> ProcessEngine:
    """A started process engine; exit_on_poison unless options["handler"] says otherwise."""
    engine = process_engine(options.pop("handler", exit_on_poison), engines, **options)
    engine.start()
    return engine


def test_a_record_that_kills_its_worker_is_blamed_and_the_others_complete(
    engines: list[Engine],
) -> None:
    engine = make_engine(engines)
    engine.submit(make_items(40, keys=4))
    reports = collect(engine, 40)
    poison = reports[POISON_OFFSET + 1]
    assert poison.outcome == Outcome.FAILED
    assert poison.attempts == 2  # retries=1
    assert poison.error is not None and "exit code 3" in poison.error
    others = [done for work_id, done in reports.items() if work_id != POISON_OFFSET + 1]
    assert all(done.outcome == Outcome.SUCCEEDED for done in others)
    # At most one death with several records running, one during the group resent with the
    # killer, then one per attempt alone.
    assert engine.describe()["worker_restarts"] <= 4


def test_a_worker_deaths_suspects_come_back_without_waiting_for_fuller_result_batches(
    engines: list[Engine],
) -> None:
    """The suspects of a death are sent one at a time; each result must come back as soon as
    the worker has nothing else to report, not after `ipc_batch_max_wait_s`. With an hour's
    wait, a worker that waited would hold every result past collect's deadline."""
    engine = make_engine(engines, ipc_batch_max_wait_s=3600.0)
    engine.submit(make_items(40, keys=4))
    reports = collect(engine, 40)
    assert reports[POISON_OFFSET + 1].outcome == Outcome.FAILED
    assert sum(done.outcome == Outcome.SUCCEEDED for done in reports.values()) == 39


def block_until_released(directory: str, record: Record) -> None:
    wait_for_file(Path(directory, "released"))


def test_the_suspects_of_a_death_go_back_in_groups_of_the_worker_concurrency(
    engines: list[Engine], tmp_path: Path
) -> None:
    """A worker killed from outside (no record to blame) while it held 20 records: they go
    back in groups of 4 (worker_concurrency), not one round trip each, and all complete with
    no attempt counted against them."""
    engine = make_engine(engines, handler=functools.partial(block_until_released, str(tmp_path)))
    sent: list[int] = []
    send = engine._send

    def counting_send(worker: WorkerHandle, batch: list[Any]) -> bool:
        sent.append(len(batch))
        return send(worker, batch)

    engine._send = counting_send  # type: ignore[method-assign]
    assert engine.wait_ready(WAIT_S)
    engine.submit(make_items(20, keys=20))
    (pid,) = engine.worker_pids()
    assert sent == [20]
    os.kill(pid, signal.SIGKILL)
    (tmp_path / "released").touch()
    reports = collect(engine, 20)
    assert all((r.outcome, r.attempts) == (Outcome.SUCCEEDED, 1) for r in reports.values())
    assert sent == [20, 4, 4, 4, 4, 4]


def test_wait_ready_returns_once_every_worker_has_started(engines: list[Engine]) -> None:
    engine = make_engine(engines, workers=2)
    assert engine.wait_ready(WAIT_S)
    assert all(worker.ready for worker in engine._workers)


def test_workers_dying_at_start_end_in_worker_error(engines: list[Engine]) -> None:
    engine = make_engine(engines, worker_init=exit_at_start)
    engine.submit(make_items(3, keys=1))
    assert engine.wait_ready(WAIT_S)  # given up: nothing more to wait for (reports() raises)
    deadline = time.monotonic() + WAIT_S
    with pytest.raises(WorkerError, match="exit code 5") as raised:
        while time.monotonic() < deadline:
            engine.reports()
            engine.wait(0.05)
    assert "no record to blame" in str(raised.value)
    # The records it held are reported as never started, so nothing waits for them.
    assert {done.id for done in engine.reports()} == {1, 2, 3}


def test_the_record_running_beside_the_killer_is_not_blamed(
    engines: list[Engine], tmp_path: Path
) -> None:
    """The worker dies with two records outstanding, the oldest innocent: neither is blamed for
    that death; each is resent alone, and only the killer, dying alone, is blamed. With
    retries=0 one blame fails a record, so blaming the oldest (or both) shows."""
    handler = functools.partial(exit_beside_an_older_record, str(tmp_path))
    engine = make_engine(engines, handler=handler, retries=0)
    engine.submit(make_items(4, keys=4))
    reports = collect(engine, 4)
    oldest, killer = reports[1], reports[2]
    assert (oldest.outcome, oldest.attempts) == (Outcome.SUCCEEDED, 1), oldest
    assert (killer.outcome, killer.attempts) == (Outcome.FAILED, 1), killer
    assert killer.error is not None and "exit code 3" in killer.error
    assert all(reports[i].outcome == Outcome.SUCCEEDED for i in (3, 4))


def test_settle_blames_only_a_record_that_was_alone() -> None:
    worker = WorkerHandle(0)
    items = make_items(6, keys=6)
    # Several outstanding at a first death: none blamed, all resent in groups, in send order.
    assert settle(worker, items, 1, 99, "signal SIGKILL", 0.0) is None
    assert [item.id for item in worker.regrouping] == [1, 2, 3, 4, 5, 6]
    assert not worker.isolating
    assert worker.suspects == dict.fromkeys(range(1, 7), 0)
    # A death during the group of 1-3 with 2 and 3 outstanding: none blamed, those two resent
    # alone, ahead of the groups still to go.
    del worker.suspects[1]  # completed
    group = [worker.regrouping.popleft() for _ in range(3)]
    assert settle(worker, group[1:], 1, 99, "signal SIGKILL", 0.0) is None
    assert [item.id for item in worker.isolating] == [2, 3]
    assert [item.id for item in worker.regrouping] == [4, 5, 6]
    assert worker.suspects == {2: 0, 3: 0, 4: 0, 5: 0, 6: 0}
    # Alone: blamed once per death; the retries+1-th blame fails it and forgets it.
    alone = worker.isolating.popleft()
    assert settle(worker, [alone], 1, 99, "signal SIGKILL", 0.0) is None
    assert worker.suspects[alone.id] == 1 and worker.isolating[0] is alone
    worker.isolating.popleft()
    failed = settle(worker, [alone], 1, 99, "signal SIGKILL", 5.0)
    assert failed is not None
    assert (failed.id, failed.outcome, failed.attempts) == (alone.id, Outcome.FAILED, 2)
    assert failed.error is not None and "process 99" in failed.error and "SIGKILL" in failed.error
    assert alone.id not in worker.suspects and alone not in worker.isolating
