"""Batch mode's assembly: records in, batches out, lanes kept.

Ordering across batches works per lane (work.py): a lane's records join the *open* batch in
submission (offset) order, many lanes share a batch, and once a batch is sent every lane in it
is held: its next records wait here until `release` says that batch finished. Unordered records
(lane None) join the open batch freely.

The open batch is sent when it holds `batch_size` records, when its oldest record waited
`max_wait_s`, or when nothing else can happen: `capacity` records (the control plane's
max_in_flight) are here and no batch is running, so no record can arrive until this one goes.
While a batch runs, a full window is not a reason to send early: that batch's end frees room
and releases lanes, which fills the open batch (sending early measured 67 records a batch
instead of 100 on the bulk bench, and a third less throughput).

Not thread-safe: the batching engine calls it on the control thread only.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from pyrallel_consumer.work import Lane, WorkItem

Item = WorkItem[object]


class Batch:
    """Records sent together: `items` in batch order, `lanes` the lanes it holds."""

    __slots__ = ("items", "lanes")

    def __init__(self, items: list[Item], lanes: set[Lane]) -> None:
        self.items = items
        self.lanes = lanes


class BatchAssembler:
    """Groups items into batches of up to `batch_size`, honouring lanes (see module doc)."""

    def __init__(self, batch_size: int, max_wait_s: float, capacity: int) -> None:
        self._batch_size = batch_size
        self._max_wait_s = max_wait_s
        self._capacity = capacity
        # Lanes with a batch open or sent, each with its records waiting for that batch.
        self._held: dict[Lane, deque[Item]] = {}
        self._open: list[Item] = []
        self._open_lanes: set[Lane] = set()
        self._open_since = 0.0  # clock seconds when the open batch got its first record
        self._outstanding = 0  # records given to add() and not yet finished (release)
        self._ready: list[Batch] = []  # sent, not yet taken by the engine

    def add(self, items: Iterable[Item], now: float) -> None:
        held = self._held
        for item in items:
            self._outstanding += 1
            lane = item.lane
            if lane is None or lane in self._open_lanes:
                self._join(item, now)
            elif lane in held:
                held[lane].append(item)  # its batch is running: wait for it
            else:
                held[lane] = deque()
                self._open_lanes.add(lane)
                self._join(item, now)

    def release(self, batch: Batch, now: float) -> None:
        """`batch` finished: its lanes' waiting records join the open batch, in order."""
        self._outstanding -= len(batch.items)
        held = self._held
        for lane in batch.lanes:
            waiting = held[lane]
            if not waiting:
                del held[lane]
                continue
            self._open_lanes.add(lane)
            # A full open batch is sent inside _join, which moves the lane out of the open set:
            # the records left wait for that batch in turn.
            while waiting and lane in self._open_lanes:
                self._join(waiting.popleft(), now)

    def _join(self, item: Item, now: float) -> None:
        if not self._open:
            self._open_since = now
        self._open.append(item)
        if len(self._open) >= self._batch_size:
            self._send()

    def _send(self) -> None:
        self._ready.append(Batch(self._open, self._open_lanes))
        self._open = []
        self._open_lanes = set()

    def due_in(self, now: float, running: bool) -> float | None:
        """Seconds until the open batch must be sent (0: now); None when there is none.
        `running`: whether some batch sent earlier has not finished."""
        if not self._open:
            return None
        if self._outstanding >= self._capacity and not running:
            return 0.0
        return max(0.0, self._open_since + self._max_wait_s - now)

    def take(self, now: float, running: bool) -> list[Batch]:
        """The batches to send now: the full ones, and the open one when it is due."""
        if self.due_in(now, running) == 0.0:
            self._send()
        ready, self._ready = self._ready, []
        return ready

    def open_items(self) -> list[Item]:
        """Records not sent yet: in the open batch or waiting for their lane."""
        return [*self._open, *(item for waiting in self._held.values() for item in waiting)]
