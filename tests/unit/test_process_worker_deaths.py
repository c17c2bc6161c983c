"""The process engine when its workers die (no Kafka: items submitted straight to the engine).

A record that kills its worker is isolated, blamed, retried and finally reported FAILED naming
the exit code; the others complete. Workers dying with no record to blame end in WorkerError
once the restart budget is spent.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pyrallel_consumer.config import build_config
from pyrallel_consumer.engines.process import ProcessEngine
from pyrallel_consumer.engines.worker_deaths import (
    RESTART_BACKOFF_MAX_S,
    describe_exit,
    restart_delay,
)
from pyrallel_consumer.errors import WorkerError
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome, Report, WorkItem

WAIT_S = 60.0
POISON_OFFSET = 7


def exit_on_poison(record: Record) -> None:
    if record.offset == POISON_OFFSET:
        os._exit(3)
    time.sleep(0.001)


def exit_at_start() -> None:
    os._exit(5)


def test_describe_exit_names_codes_and_signals() -> None:
    assert describe_exit(3) == "exit code 3"
    assert describe_exit(-9) == "signal SIGKILL"
    assert describe_exit(None) == "an unknown cause"


def test_restart_delay_doubles_up_to_a_cap() -> None:
    delays = [restart_delay(n) for n in range(1, 12)]
    assert delays[1] == 2 * delays[0]
    assert delays == sorted(delays)
    assert delays[-1] == RESTART_BACKOFF_MAX_S


@pytest.fixture
def engines() -> Iterator[list[ProcessEngine]]:
    started: list[ProcessEngine] = []
    yield started
    for engine in started:
        engine.close(5.0)


def make_engine(engines: list[ProcessEngine], **options: Any) -> ProcessEngine:
    worker_init = options.pop("worker_init", None)
    config = build_config(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"},
        topics=["t"],
        engine="process",
        ordering="key",
        workers=1,
        worker_concurrency=4,
        retries=1,
        retry_backoff_s=0.0,
        **options,
    )
    engine = ProcessEngine(exit_on_poison, config, worker_init=worker_init)
    engines.append(engine)
    engine.start()
    return engine


def items(count: int, keys: int) -> list[WorkItem[object]]:
    lane_of = lane_function("key")
    made = []
    for offset in range(count):
        record = Record("t", 0, offset, f"key-{offset % keys}".encode(), b"v")
        made.append(WorkItem(offset + 1, lane_of(record), record, None, 0.0))
    return made


def collect(engine: ProcessEngine, count: int) -> dict[int, Report]:
    reports: dict[int, Report] = {}
    deadline = time.monotonic() + WAIT_S
    while len(reports) < count and time.monotonic() < deadline:
        for done in engine.reports():
            assert done.id not in reports, f"item {done.id} reported twice"
            reports[done.id] = done
        engine.wait(0.05)
    assert len(reports) == count, f"{len(reports)} of {count} reported"
    return reports


def test_a_record_that_kills_its_worker_is_blamed_and_the_others_complete(
    engines: list[ProcessEngine],
) -> None:
    engine = make_engine(engines)
    engine.submit(items(40, keys=4))
    reports = collect(engine, 40)
    poison = reports[POISON_OFFSET + 1]
    assert poison.outcome == Outcome.FAILED
    assert poison.attempts == 2  # retries=1
    assert poison.error is not None and "exit code 3" in poison.error
    others = [done for work_id, done in reports.items() if work_id != POISON_OFFSET + 1]
    assert all(done.outcome == Outcome.SUCCEEDED for done in others)
    # At most one death with several records running, then one per attempt alone.
    assert engine.describe()["worker_restarts"] <= 3


def test_workers_dying_at_start_end_in_worker_error(engines: list[ProcessEngine]) -> None:
    engine = make_engine(engines, worker_init=exit_at_start)
    engine.submit(items(3, keys=1))
    deadline = time.monotonic() + WAIT_S
    with pytest.raises(WorkerError, match="exit code 5") as raised:
        while time.monotonic() < deadline:
            engine.reports()
            engine.wait(0.05)
    assert "no record to blame" in str(raised.value)
    # The records it held are reported as never started, so nothing waits for them.
    assert {done.id for done in engine.reports()} == {1, 2, 3}
