"""Nothing relies on the GIL's switch interval: the real ControlLoop and each real engine, with
`sys.setswitchinterval(1e-6)` (a thread switch between almost any two steps, in the process
engine's workers too), 1,000 lanes and tens of thousands of records.

Each run must end with 0 records lost, 0 handled twice, 0 order violations or overlaps within
a lane, every record completed once (`on_complete`) and every partition committed to its end.
Meanwhile another thread reads `stats()` the whole time, as a metrics scrape would: every
snapshot it gets agrees with itself and with the one before.

The client is the fake of control_fakes.py (no broker: the threads under test are the
control thread, the engines' and the stats reader); the clock is the real one, as the engines
wait in real time. README "Concurrency model" lists the hand-offs this exercises.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import switch_interval_support as support
from control_fakes import TOPIC, FakeClient, FakeClock, Script, tp
from fake_messages import FakeMessage

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.config import build_config
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.batching import BatchingEngine
from pyrallel_consumer.engines.registry import engine_spec

pytestmark = pytest.mark.slow

PARTITIONS = 8
KEYS_PER_PARTITION = 125  # 1,000 lanes
RUN_TIMEOUT_S = 120.0  # a safety net against a hang, far above a run's time; never asserted


@dataclass(frozen=True)
class Case:
    name: str
    engine: str
    handler: Callable[..., Any]
    records: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def process(self) -> bool:
        return self.engine == "process"


CASES = [
    Case("baseline", "baseline", support.handle, 20_000),
    Case("async-coroutines", "async", support.handle_async, 60_000),
    Case("async-threads", "async", support.handle, 60_000, {"concurrency": 16}),
    Case("process", "process", support.handle, 60_000, {"workers": 2, "worker_concurrency": 4}),
    Case("process-coroutines", "process", support.handle_async, 20_000, {"workers": 2}),
    Case(
        "batch-async-threads",
        "async",
        support.handle_batch,
        40_000,
        {"concurrency": 16, "batch_size": 50, "batch_max_wait_s": 0.005},
    ),
]


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(support.SWITCH_INTERVAL_S)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def fill(client: FakeClient, records: int) -> None:
    """`records` records over PARTITIONS partitions, KEYS_PER_PARTITION keys in each."""
    per_partition = records // PARTITIONS
    for p in range(PARTITIONS):
        client.log[p] = [
            FakeMessage(TOPIC, p, o, b"p%d-k%d" % (p, o % KEYS_PER_PARTITION), b"v")
            for o in range(per_partition)
        ]
    client.rebalance("assign", *range(PARTITIONS))


def build_engine(case: Case, workers_dir: Path) -> tuple[Engine, Any]:
    config = build_config(
        {"bootstrap.servers": "fake:9092", "group.id": "g"},
        topics=[TOPIC],
        engine=case.engine,
        ordering="key",
        retries=3,
        retry_backoff_s=0.001,
        retry_backoff_max_s=0.01,
        commit_interval_s=0.05,
        drain_timeout_s=10.0,  # bounds a failing run's end; a passing one drains at once
        **case.options,
    )
    init = support.init_worker if case.process else None
    exit_ = functools.partial(support.dump, str(workers_dir)) if case.process else None
    engine = engine_spec(case.engine).create(case.handler, config, init, exit_)
    if config.batch_size is not None:
        engine = BatchingEngine(engine, config)
    return engine, config


class StatsReader:
    """Reads stats() on its own thread until stopped; keeps what was wrong with any snapshot."""

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats
        self._stop = threading.Event()
        self.reads = 0
        self.problems: list[str] = []
        self._thread = threading.Thread(target=self._run, name="stats-reader")
        self._thread.start()

    def _run(self) -> None:
        completed = 0
        while not self._stop.is_set():
            try:
                snapshot = self._stats()
            except Exception as exc:  # any exception is the finding
                self.problems.append(f"stats() raised {exc!r}")
                return
            self.reads += 1
            if not completed <= snapshot["completed"] <= snapshot["received"]:
                self.problems.append(f"completed {completed} then {snapshot}")
            completed = snapshot["completed"]
            if snapshot["in_flight"] < 0 or snapshot["backlog"] < 0:
                self.problems.append(f"negative size in {snapshot}")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_no_record_lost_doubled_or_reordered_with_a_thread_switch_at_every_step(
    case: Case, tiny_switch_interval: None, tmp_path: Path
) -> None:
    support.reset()
    client = FakeClient(FakeClock(), Script())  # its clock only moves in poll(): unused here
    fill(client, case.records)
    engine, config = build_engine(case, tmp_path)
    completed: list[Completion] = []
    loop = ControlLoop(
        config,
        engine,
        on_complete=completed.append,  # on the control thread
        clock=time.monotonic,
        client_factory=client.factory,
    )
    reader = StatsReader(loop.stats)
    try:
        done = loop.run(max_records=case.records, timeout=RUN_TIMEOUT_S)
    finally:
        reader.stop()

    everything = {(p, o) for p in range(PARTITIONS) for o in range(case.records // PARTITIONS)}
    if case.process:
        handled, violations, files = support.load(tmp_path)
        assert files == 2, "a worker did not report what it saw (it did not exit cleanly)"
    else:
        handled, violations = support.RECORDER.handled, support.RECORDER.violations
    lost = everything - set(handled)
    doubled = {where: n for where, n in handled.items() if n > 1}
    assert (len(lost), len(doubled), violations) == (0, 0, []), (
        f"lost {sorted(lost)[:10]}, handled more than once {sorted(doubled.items())[:10]}, "
        f"order violations and overlaps {violations[:10]}"
    )
    assert set(handled) == everything
    completions = Counter((c.partition, c.offset) for c in completed if c.ok)
    assert set(completions) == everything and set(completions.values()) == {1}
    assert done == case.records
    final = loop.stats()
    assert (final["completed"], final["failed"], final["in_flight"]) == (case.records, 0, 0)
    assert final["retries"] > 0  # the retry paths ran
    ends = {p: client.committed_offsets[tp(p)][0] for p in range(PARTITIONS)}
    assert ends == dict.fromkeys(range(PARTITIONS), case.records // PARTITIONS)
    assert reader.problems == [] and reader.reads > 0
