"""An engine thread that ends on an exception outside the runner's own net ends the run with
EngineError, instead of leaving its records in flight until the run's timeout.

The failure is planted where it was seen: building a report (a native `Report` built from an
older ext/records.pyx took fewer arguments). The engines are real; the handler does nothing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from control_fakes import FakeClient, FakeClock, Script
from engine_support import WAIT_S, collect, engine_config, make_items, process_engine, wait_until

import pyrallel_consumer.engines.baseline as baseline_module
import pyrallel_consumer.engines.coroutine_lanes as coroutine_module
import pyrallel_consumer.engines.lanes as lanes_module
from pyrallel_consumer.config import build_config
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.engines.asyncio_engine import AsyncEngine
from pyrallel_consumer.engines.base import Engine, ReportQueue
from pyrallel_consumer.engines.baseline import BaselineEngine
from pyrallel_consumer.engines.process_worker import THREAD_FAILED_EXIT
from pyrallel_consumer.errors import EngineError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


def broken_report(*args: Any) -> Any:
    raise TypeError("__init__() takes at most 5 positional arguments (6 given)")


def noop(record: Record) -> None:
    return None


async def noop_async(record: Record) -> None:
    await asyncio.sleep(0)


def _raises_engine_error(engine: Engine) -> EngineError:
    """Wait for the engine's reports() to raise; the error it raised."""
    raised: list[EngineError] = []

    def failed() -> bool:
        try:
            engine.reports()
        except EngineError as exc:
            raised.append(exc)
        return bool(raised)

    wait_until(failed, "reports() to raise EngineError")
    return raised[0]


@pytest.mark.parametrize(
    ("kind", "module", "name"),
    [
        ("baseline", baseline_module, "Report"),
        ("threads", lanes_module, "Report"),
        ("coroutines", coroutine_module, "GroupReport"),
    ],
)
def test_a_thread_that_fails_outside_the_net_ends_the_run(
    kind: str, module: Any, name: str, engines: list[Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `engines` before `monkeypatch`: its teardown (closing the engine, which reports the items
    # waiting in their lanes CANCELLED) runs once reports can be built again.
    monkeypatch.setattr(module, name, broken_report)
    if kind == "baseline":
        engine: Engine = BaselineEngine(noop, engine_config("baseline"))
    else:
        handler = noop_async if kind == "coroutines" else noop
        engine = AsyncEngine(handler, engine_config("async", concurrency=2))
    engines.append(engine)
    engine.start()
    engine.submit(make_items(4, keys=2))
    error = _raises_engine_error(engine)
    assert "stopped on TypeError" in str(error) and "run ends" in str(error)
    assert isinstance(error.__cause__, TypeError)
    engine.reports()  # raised once: the shutdown that follows takes reports as usual


def test_the_control_loop_ends_with_the_engine_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(baseline_module, "Report", broken_report)
    clock = FakeClock()
    client = FakeClient(clock, Script())
    config = build_config(
        {"bootstrap.servers": "fake:9092", "group.id": "g"},
        topics=["orders"],
        engine="baseline",
        drain_timeout_s=1.0,
    )
    engine = BaselineEngine(noop, config)
    loop = ControlLoop(config, engine, client_factory=client.factory)
    client.produce(0, 10)
    client.rebalance("assign", 0)
    with pytest.raises(EngineError, match="pyrallel-baseline stopped on TypeError"):
        loop.run(max_records=10, timeout=WAIT_S)
    assert client.last_commit() in (None, (0, "")), "nothing it held was committed"


def test_the_first_failure_wins_and_wakes_a_waiting_reader() -> None:
    queue = ReportQueue()
    queue.fail("pyrallel-worker-0", ValueError("first"))
    queue.fail("pyrallel-worker-1", ValueError("second"))
    assert queue.wait(0.0), "a wait() returns at once"
    with pytest.raises(EngineError, match="pyrallel-worker-0 stopped on ValueError"):
        queue.take_all()
    assert queue.take_all() == []


def plant_broken_report_in_the_worker() -> None:
    """worker_init: the worker's thread runner builds its reports with `broken_report`."""
    lanes_module.Report = broken_report  # type: ignore[misc]


def test_a_worker_whose_thread_fails_exits_and_its_records_are_blamed(
    engines: list[Engine],
) -> None:
    """In a worker process the thread failure ends the process (THREAD_FAILED_EXIT), which the
    parent handles like any worker death: the records fail naming the exit code."""
    engine = process_engine(noop, engines, worker_init=plant_broken_report_in_the_worker, retries=0)
    engine.start()
    items = make_items(2, keys=2)
    engine.submit(items)
    reports = collect(engine, len(items))
    assert {report.outcome for report in reports.values()} == {Outcome.FAILED}
    assert all(f"exit code {THREAD_FAILED_EXIT}" in (r.error or "") for r in reports.values())
