"""Batch handlers and trace checks shared by the batch-mode integration tests.

Each handler call appends one line per record to a file per process: partition, offset, key,
the call's start and end (monotonic) and a call id, so the checks work for the process engine's
workers too. A call that raises traces nothing (like a database transaction rolled back).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple

import support

from pyrallel_consumer import Record

TRACE_ENV = "PYRALLEL_TEST_TRACE_DIR"
POISON_ENV = "PYRALLEL_TEST_POISON"  # "partition:offset" of the record that makes calls fail

_lock = threading.Lock()
_files: dict[str, Any] = {}


class Execution(NamedTuple):
    partition: int
    offset: int
    key: str
    start: float
    end: float
    call: str


def _trace(records: list[Record], start: float) -> None:
    end = time.monotonic()
    call = uuid.uuid4().hex[:12]
    path = os.path.join(os.environ[TRACE_ENV], f"trace-{os.getpid()}.txt")
    lines = "".join(
        f"{r.partition} {r.offset} {r.key.decode() if r.key else '-'} {start!r} {end!r} {call}\n"
        for r in records
    )
    with _lock:
        out = _files.get(path)
        if out is None:
            out = _files[path] = open(path, "a", buffering=1)  # noqa: SIM115  # per process
        out.write(lines)
        out.flush()


def _poisoned(records: list[Record]) -> bool:
    poison = os.environ.get(POISON_ENV)
    return poison is not None and any(f"{r.partition}:{r.offset}" == poison for r in records)


def batch_handler(records: list[Record]) -> None:
    start = time.monotonic()
    if _poisoned(records):
        raise ValueError("poison record in this batch")
    time.sleep(0.001 + random.random() * 0.003)
    _trace(records, start)


async def async_batch_handler(records: list[Record]) -> None:
    start = time.monotonic()
    if _poisoned(records):
        raise ValueError("poison record in this batch")
    await asyncio.sleep(0.001 + random.random() * 0.003)
    _trace(records, start)


def dying_batch_handler(records: list[Record]) -> None:
    """Kills its worker process when the poison record is in the batch."""
    if _poisoned(records):
        os._exit(3)
    batch_handler(records)


def read_traces(directory: Path) -> list[Execution]:
    executions = []
    for path in directory.glob("trace-*.txt"):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:
                executions.append(
                    Execution(
                        int(parts[0]),
                        int(parts[1]),
                        parts[2],
                        float(parts[3]),
                        float(parts[4]),
                        parts[5],
                    )
                )
    return executions


def in_lanes(executions: Iterable[Execution], ordering: str) -> list[support.Execution]:
    """The executions, each in its lane under `ordering` ("key" or "partition"), for
    support.assert_lane_order."""
    lane: Callable[[Execution], Any] = (
        (lambda e: (e.partition, e.key)) if ordering == "key" else (lambda e: e.partition)
    )
    return [support.Execution(lane(e), e.offset, e.start, e.end, e.call) for e in executions]
