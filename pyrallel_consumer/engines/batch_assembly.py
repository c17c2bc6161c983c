"""Batch mode's assembly: records in, batches out, lanes kept.

Ordering across batches works per lane (work.py). A lane is *free* or *held*: held from the
moment a batch with its records is sent until `release` says that batch finished. Records of a
held lane wait for it; records of a free lane are *unbatched*, and batches are made of unbatched
records, lane by lane: all of a lane's unbatched records in submission (offset) order, the lanes
that waited longest first, many lanes per batch, until the batch is full (a lane cut at the
batch's end keeps its rest waiting for that batch). Unordered records (lane None) are never
held.

Why lanes are picked when a batch is sent, not as records arrive: the control plane hands out
records round-robin across lanes, one per lane per round, so a batch filled on arrival would
hold one record each of a hundred keys, and all of them would then wait for it. Taking whole
lanes keeps a key's records together and more keys free (simulated, 100 keys, batches of 100
taking 10 ms, 1,000 in flight: 53,000 records/s filled on arrival, 66,000 this way; the rest of
the gap to 100,000 is records waiting for held keys, which count against max_in_flight).

A batch is sent when `batch_size` records are unbatched, when the oldest unbatched record waited
`max_wait_s`, or when nothing else can happen: `capacity` records (the control plane's
max_in_flight) are here and no batch is running, so no record can arrive until some go. While
a batch runs, a full window is no reason to send a partial batch: that batch's end frees room.

Not thread-safe: the batching engine calls it on the control thread only.

`piece_lists` gives the handler's list of records and the report's list of ids of a batch (or a
part of one) in one pass over its items, while they are still in the caches from `take`.

A native twin (ext/batch_assembly.pxi, in pyrallel_consumer._record_path) does the same in C
when built (pyrallel_consumer/native.py): `add` and `piece_lists` run once per record.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Lane, WorkItem

Item = WorkItem[object]


class Batch:
    """Records sent together: `items` in batch order, `lanes` the lanes it holds."""

    __slots__ = ("items", "lanes")

    def __init__(self, items: list[Item], lanes: list[Lane]) -> None:
        self.items = items
        self.lanes = lanes


class BatchAssembler:
    """Groups items into batches of up to `batch_size`, honouring lanes (see module doc)."""

    def __init__(self, batch_size: int, max_wait_s: float, capacity: int) -> None:
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._capacity = capacity
        # Free lanes with records; the same lanes oldest first, with since when. A deque, not
        # the dict's own order: every next(iter(dict)) steps over the entries deleted at its
        # front again (native twin: a fifth of the control thread's CPU with 100 keys).
        self._unbatched: dict[Lane, deque[Item]] = {}
        self._order: deque[tuple[Lane, float]] = deque()
        self._unbatched_count = 0
        self._waiting: dict[Lane, deque[Item]] = {}  # held lanes and the records waiting for them
        self._outstanding = 0  # records given to add() and not yet finished (release)

    def add(self, items: Sequence[Item], now: float) -> None:
        held, unbatched, order = self._waiting, self._unbatched, self._order
        added = 0  # counted once per call: the loop runs per record
        for item in items:
            lane = item.lane
            waiting = held.get(lane)
            if waiting is not None:
                waiting.append(item)
                continue
            queued = unbatched.get(lane)
            if queued is None:
                queued = unbatched[lane] = deque()
                order.append((lane, now))
            queued.append(item)
            added += 1
        self._outstanding += len(items)
        self._unbatched_count += added

    def release(self, batch: Batch, now: float) -> None:
        """`batch` finished: its lanes are free, and their waiting records unbatched."""
        self._outstanding -= len(batch.items)
        for lane in batch.lanes:
            waiting = self._waiting.pop(lane)
            if waiting:
                self._unbatched[lane] = waiting
                self._order.append((lane, now))
                self._unbatched_count += len(waiting)

    def due_in(self, now: float, running: bool) -> float | None:
        """Seconds until unbatched records must be sent (0: now); None when there are none.
        `running`: whether some batch sent earlier has not finished."""
        if not self._unbatched_count:
            return None
        if self._unbatched_count >= self._batch_size:
            return 0.0
        if self._outstanding >= self._capacity and not running:
            return 0.0
        oldest = self._order[0][1]
        return max(0.0, oldest + self._max_wait_s - now)

    def take(self, now: float, running: bool) -> list[Batch]:
        """The batches to send now: every full one, then a partial one when it is due."""
        batches = []
        while self._unbatched_count >= self._batch_size:
            batches.append(self._make())
        if self.due_in(now, running or bool(batches)) == 0.0:
            batches.append(self._make())
        return batches

    def _make(self) -> Batch:
        items: list[Item] = []
        lanes: list[Lane] = []
        unbatched, room = self._unbatched, self._batch_size
        while room and unbatched:
            lane = self._order[0][0]
            queued = unbatched[lane]
            if len(queued) <= room:
                del unbatched[lane]
                self._order.popleft()
                items.extend(queued)
                room -= len(queued)
                rest: deque[Item] = deque()
            else:
                items.extend(queued.popleft() for _ in range(room))
                room = 0
                rest = queued
                if lane is not None:  # the rest waits for this batch: no longer unbatched
                    del unbatched[lane]
                    self._order.popleft()
                    self._unbatched_count -= len(rest)
            if lane is not None:
                self._waiting[lane] = rest
                lanes.append(lane)
        self._unbatched_count -= len(items)
        return Batch(items, lanes)

    def open_items(self) -> list[Item]:
        """Records not sent yet: unbatched, or waiting for their lane."""
        return [
            *(item for queued in self._unbatched.values() for item in queued),
            *(item for waiting in self._waiting.values() for item in waiting),
        ]


def piece_lists(items: Sequence[Item]) -> tuple[list[Record], list[int]] | None:
    """The records and the ids of `items`, in order; None when one of them is cancelled."""
    records, ids = [], []
    for item in items:
        if item.cancelled:
            return None
        records.append(item.record)
        ids.append(item.id)
    return records, ids


# The native twin (ext/batch_assembly.pxi) replaces the names above when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the pure-Python
# definitions. PURE_TWIN keeps them reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "batch_assembly", ("Batch", "BatchAssembler", "piece_lists"))
