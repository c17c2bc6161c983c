"""Every engine x every ordering on Apache Kafka: nothing lost, order kept, offsets committed.

20,000 records over 8 partitions and 100 keys; the handler sleeps 0-2 ms at random (0-1 ms for
baseline, which handles one record at a time). Each handler execution is traced (start, end) to
a file per process, so the same checks work for the process engine's workers.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import Execution, assert_lane_order, committed, end_offsets

from pyrallel_consumer import Completion, ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 8
KEYS = 100
RUN_TIMEOUT_S = 240.0
TRACE_ENV = "PYRALLEL_TEST_TRACE_DIR"

# ---- handlers (module level: the process engine pickles them) --------------------------------

_trace_lock = threading.Lock()
_trace_file: Any = None
_trace_path: str | None = None


def _trace(record: Record, start: float, end: float) -> None:
    """Append one execution to this process's trace file (one file per pid)."""
    global _trace_file, _trace_path
    directory = os.environ[TRACE_ENV]
    with _trace_lock:
        path = os.path.join(directory, f"trace-{os.getpid()}.txt")
        if _trace_path != path:
            _trace_file = open(path, "a", buffering=1)  # noqa: SIM115  # kept open per process
            _trace_path = path
        key = record.key.decode() if record.key else "-"
        _trace_file.write(f"{record.partition} {record.offset} {key} {start!r} {end!r}\n")
        _trace_file.flush()


def sleepy_handler(record: Record) -> None:
    start = time.monotonic()
    time.sleep(random.random() * 0.002)
    _trace(record, start, time.monotonic())


def quick_sleepy_handler(record: Record) -> None:
    start = time.monotonic()
    time.sleep(random.random() * 0.001)
    _trace(record, start, time.monotonic())


async def async_sleepy_handler(record: Record) -> None:
    start = time.monotonic()
    await asyncio.sleep(random.random() * 0.002)
    _trace(record, start, time.monotonic())


# ---- helpers ---------------------------------------------------------------------------------

Trace = tuple[int, int, str, float, float]  # partition, offset, key, start, end


def read_traces(directory: Path) -> list[Trace]:
    executions = []
    for path in directory.glob("trace-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) != 5:
                continue
            executions.append(
                (int(parts[0]), int(parts[1]), parts[2], float(parts[3]), float(parts[4]))
            )
    return executions


CASES = [
    ("baseline", "key", quick_sleepy_handler),
    ("baseline", "partition", quick_sleepy_handler),
    ("baseline", "unordered", quick_sleepy_handler),
    ("async", "key", async_sleepy_handler),
    ("async", "partition", async_sleepy_handler),
    ("async", "unordered", async_sleepy_handler),
    ("async", "key", sleepy_handler),  # plain function on the async engine's thread pool
    ("process", "key", sleepy_handler),
    ("process", "partition", sleepy_handler),
    ("process", "unordered", sleepy_handler),
]


@pytest.mark.parametrize(
    ("engine", "ordering", "handler"),
    CASES,
    ids=[f"{e}-{o}-{h.__name__}" for e, o, h in CASES],
)
def test_engine_ordering(
    engine: str,
    ordering: str,
    handler: Callable[[Record], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    group = f"engines-{uuid.uuid4().hex[:8]}"
    completions: list[Completion] = []
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering=ordering,
        commit_interval_s=0.5,
        on_complete=completions.append,
    )
    completed = consumer.run(max_records=RECORDS, timeout=RUN_TIMEOUT_S)
    stats = consumer.stats()

    want = {(r.partition, r.offset) for r in produced}
    done = [(c.partition, c.offset) for c in completions]
    missing = want - set(done)
    assert not missing, f"{len(missing)} records never completed, e.g. {sorted(missing)[:5]}"
    assert len(done) == len(set(done)), "a record completed twice"
    assert completed == RECORDS
    assert all(c.ok and c.attempts == 1 for c in completions)
    assert stats["failed"] == 0

    executions = read_traces(tmp_path)
    assert {(e[0], e[1]) for e in executions} == want
    if ordering == "key":
        lane: Callable[[Trace], Any] | None = lambda e: (e[0], e[2])  # noqa: E731
        complete_lane: Callable[[Completion], Any] = lambda c: (c.partition, c.key)  # noqa: E731
    elif ordering == "partition":
        lane = lambda e: e[0]  # noqa: E731
        complete_lane = lambda c: c.partition  # noqa: E731
    else:
        lane = None
    if lane is not None:
        assert_lane_order(Execution(lane(e), e[1], e[3], e[4]) for e in executions)
        # The on_complete callbacks of one lane also arrive in offset order.
        last: dict[Any, int] = {}
        for c in completions:
            name = complete_lane(c)
            assert c.offset > last.get(name, -1), f"{name}: completion of {c.offset} out of order"
            last[name] = c.offset

    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)
    assert all(not tp.metadata for tp in final.values())
