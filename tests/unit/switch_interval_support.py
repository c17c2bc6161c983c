"""Handlers of the switch-interval stress test (test_switch_interval_stress.py) and what they saw.

A small module of its own because the process engine's workers import it (the handlers are
pickled by reference): it imports nothing of the test machinery, so a worker starts quickly.

Each process has one `Recorder` (`RECORDER`); every handler call goes through it:
- a record whose offset is a multiple of FAIL_EVERY fails its first attempt (so the retry
  paths run too: the retry queue's timer thread, the coroutine runner's backoff, the baseline's
  inline sleep, a batch retried as a whole);
- an attempt that does not fail is `start`ed and `end`ed: the recorder counts an overlap when
  another record of the same lane is running, an order violation when the lane already
  started a later offset, and a handling per record (more than one is a duplicate).
In the process engine each worker dumps its recorder to a file at exit (`dump`), and the test
merges the files (`load`); a lane's records all run in one worker, so per-process checks see
every lane whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
from collections import Counter
from pathlib import Path

from pyrallel_consumer.record import Record

FAIL_EVERY = 97  # offsets divisible by this fail their first attempt
SWITCH_INTERVAL_S = 1e-6  # sys.setswitchinterval: a thread switch between almost any two steps

Lane = tuple[int, bytes | None]  # (partition, key): the lane under ordering='key', one topic


class Recorder:
    """What the handlers of one process saw. Safe from any thread: one lock around each step,
    so the checker itself relies on nothing but the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failed_once: set[tuple[int, int]] = set()
        self._running: set[Lane] = set()
        self._last: dict[Lane, int] = {}
        self.handled: Counter[tuple[int, int]] = Counter()  # (partition, offset) -> handlings
        self.violations: list[str] = []

    def should_fail(self, record: Record) -> bool:
        """True, once per record, for the records that fail their first attempt."""
        if record.offset % FAIL_EVERY:
            return False
        where = (record.partition, record.offset)
        with self._lock:
            if where in self._failed_once:
                return False
            self._failed_once.add(where)
            return True

    def start(self, record: Record) -> None:
        lane: Lane = (record.partition, record.key)
        with self._lock:
            if lane in self._running:
                self.violations.append(f"{lane}: offset {record.offset} overlaps another")
            self._running.add(lane)
            last = self._last.get(lane, -1)
            if record.offset < last:
                self.violations.append(f"{lane}: offset {record.offset} after {last}")
            self._last[lane] = max(last, record.offset)

    def end(self, record: Record) -> None:
        with self._lock:
            self._running.discard((record.partition, record.key))
            self.handled[(record.partition, record.offset)] += 1


RECORDER = Recorder()


def reset() -> None:
    """A new recorder for this process (a test's start, a worker's start)."""
    global RECORDER
    RECORDER = Recorder()


def handle_batch(records: list[Record]) -> None:
    """Batch mode's handler; the plain one calls it with one record. A batch that fails does
    so before any of its records started (the whole batch is retried)."""
    recorder = RECORDER
    if any(recorder.should_fail(record) for record in records):
        raise RuntimeError("fails its first attempt")
    for record in records:
        recorder.start(record)
        recorder.end(record)


def handle(record: Record) -> None:
    handle_batch([record])


async def handle_async(record: Record) -> None:
    recorder = RECORDER
    if recorder.should_fail(record):
        raise RuntimeError("fails its first attempt")
    recorder.start(record)
    await asyncio.sleep(0)  # other coroutines run while this record is running
    recorder.end(record)


def init_worker() -> None:
    """A process worker's worker_init: the same tiny switch interval as the parent's."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    reset()


def dump(directory: str) -> None:
    """A process worker's worker_exit (with functools.partial): its recorder, to a file."""
    recorder = RECORDER
    data = {
        "handled": [[p, o, n] for (p, o), n in recorder.handled.items()],
        "violations": recorder.violations,
    }
    Path(directory, f"{os.getpid()}.json").write_text(json.dumps(data))


def load(directory: Path) -> tuple[Counter[tuple[int, int]], list[str], int]:
    """The dumped recorders merged: handlings per record, violations, and how many files."""
    handled: Counter[tuple[int, int]] = Counter()
    violations: list[str] = []
    files = sorted(directory.glob("*.json"))
    for file in files:
        data = json.loads(file.read_text())
        for p, o, n in data["handled"]:
            handled[(p, o)] += n
        violations.extend(data["violations"])
    return handled, violations, len(files)
