"""Helpers of the engine unit tests, which submit work items straight to an engine (no Kafka).

- `engine_config`: a ConsumerConfig for one engine, broker-free, retries without backoff.
- `process_engine`: a process engine of one worker, not started.
- `make_items`: work items over a number of keys, one per offset of partition ("t", 0).
- `collect`: an engine's reports until every item was reported once.
- `Reports`: the report callback of a lane runner, waited on by the test thread.
- `wait_until`: polls a condition other threads make true.
- `Gate`: handlers (plain and `async def`) that note each record's offset, then hold it until
  the test opens the gate.

The `engines` fixture (closes every engine a test built) is in conftest.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from pyrallel_consumer.config import ConsumerConfig, build_config
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.process import ProcessEngine
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Report, WorkItem

WAIT_S = 60.0  # generous upper bound for a condition; never a timing assertion


def engine_config(engine: str, **options: Any) -> ConsumerConfig:
    """The config of `engine` ("baseline", "async", "process") for topic "t": key ordering and
    no retry backoff unless `options` (build_config's keywords) say otherwise. The broker
    address is never dialled: the tests use no client."""
    options.setdefault("ordering", "key")
    options.setdefault("retry_backoff_s", 0.0)
    return build_config(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"},
        topics=["t"],
        engine=engine,
        **options,
    )


def process_engine(
    handler: Callable[..., Any],
    engines: list[Engine],
    worker_init: Callable[[], None] | None = None,
    worker_exit: Callable[[], None] | None = None,
    **options: Any,
) -> ProcessEngine:
    """A process engine running `handler`, not started, appended to `engines` (the fixture
    closes it): one worker of 4 threads, one retry, unless `options` (build_config's
    keywords) say otherwise."""
    settings: dict[str, Any] = {"workers": 1, "worker_concurrency": 4, "retries": 1, **options}
    engine = ProcessEngine(
        handler,
        engine_config("process", **settings),
        worker_init=worker_init,
        worker_exit=worker_exit,
    )
    engines.append(engine)
    return engine


def make_items(
    count: int,
    keys: int,
    *,
    ordering: str = "key",
    first_id: int = 1,
    values: Mapping[int, bytes] | None = None,
) -> list[WorkItem[object]]:
    """`count` items of topic "t" partition 0, offsets 0 .. count-1, offset n keyed
    "key-{n % keys}" with the lane `ordering` gives it, value values.get(n, b"v"), and work
    id first_id + n."""
    lane_of = lane_function(ordering)
    values = values or {}
    made: list[WorkItem[object]] = []
    for offset in range(count):
        key = f"key-{offset % keys}".encode()
        record = Record("t", 0, offset, key, values.get(offset, b"v"))
        made.append(WorkItem(first_id + offset, lane_of(record), record, None, 0.0))
    return made


def report_ids(report: Report) -> list[int]:
    """The work ids a report covers: a GroupReport's (batch mode), else its one id."""
    return report.ids if isinstance(report, GroupReport) else [report.id]


def collect(engine: Engine, count: int) -> dict[int, Report]:
    """The report on each of the next `count` items of `engine` by work id, polled from the
    calling (control) thread. AssertionError if an item is reported twice or fewer than
    `count` came within WAIT_S seconds."""
    reports: dict[int, Report] = {}
    deadline = time.monotonic() + WAIT_S
    while len(reports) < count and time.monotonic() < deadline:
        for done in engine.reports():
            for item_id in report_ids(done):
                assert item_id not in reports, f"item {item_id} reported twice"
                reports[item_id] = done
        if len(reports) < count:
            engine.wait(0.05)
    assert len(reports) == count, f"{len(reports)} of {count} reported"
    return reports


class Reports:
    """A lane runner's report callback: runner threads append, the test thread waits. The
    list `done` (arrival order) is guarded by the condition's lock. A GroupReport is kept as
    one Report per item it covers, so `done` has a report per item."""

    def __init__(self) -> None:
        self.done: list[Report] = []
        self._cond = threading.Condition()

    def __call__(self, done: Report) -> None:
        with self._cond:
            self.done.extend(
                Report(item_id, done.outcome, done.attempts, done.completed_at, done.error)
                for item_id in report_ids(done)
            )
            self._cond.notify_all()

    def wait_for(self, count: int) -> list[Report]:
        """The first `count` or more reports, in arrival order; AssertionError if fewer
        came within WAIT_S seconds."""
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.done) >= count, WAIT_S), (
                f"{len(self.done)} of {count} reports"
            )
            return list(self.done)

    def by_id(self, count: int) -> dict[int, Report]:
        """wait_for(count) by work id; AssertionError if an item was reported twice."""
        done = self.wait_for(count)
        by_id = {report.id: report for report in done}
        assert len(by_id) == len(done), "an item was reported twice"
        return by_id


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Return once `condition()` holds (polled every 5 ms); AssertionError naming `what` if it
    did not within WAIT_S seconds."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


class Gate:
    """Handlers that append each record's offset to `calls`, then hold it until `open()`: the
    plain one blocks its thread, the coroutine one awaits (polling every 5 ms), so it never
    blocks the event loop."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self._open = threading.Event()

    def open(self) -> None:
        self._open.set()

    def blocking(self, record: Record) -> None:
        self.calls.append(record.offset)
        self._open.wait(WAIT_S)

    async def awaiting(self, record: Record) -> None:
        self.calls.append(record.offset)
        while not self._open.is_set():
            await asyncio.sleep(0.005)
