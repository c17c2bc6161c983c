"""The backlog: records received but not yet handed on, queued per lane.

Kafka returns records a partition at a time, so a plain FIFO window of `max_in_flight` records
would hold only the few keys of one partition and leave most lanes idle (measured: 2,400/s
instead of 20,000/s for 100 keys x 5 ms). Taking records round-robin across lanes spreads the
in-flight window over every key that has work.

Used by the control plane (records queued for in-flight room) and by the process engine
(records assigned to a worker, not sent yet), so it lives outside both packages. Not
thread-safe: each owner says which thread (or lock) guards its instance.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Lane, WorkItem

Owner = TypeVar("Owner")


SizeOf = Callable[[WorkItem[object]], int]


def record_bytes(item: WorkItem[object]) -> int:
    """Key + value bytes of the item's record."""
    record = item.record
    return len(record.value or b"") + len(record.key or b"")


def batch_bytes(item: WorkItem[object]) -> int:
    """Key + value bytes of the records of a batch-mode item, whose `record` is their list."""
    records: list[Record] = item.record  # type: ignore[assignment]
    return sum(len(r.value or b"") + len(r.key or b"") for r in records)


class Backlog(Generic[Owner]):
    """Work items per lane, taken round-robin across lanes; counts items and key+value bytes."""

    __slots__ = ("_lanes", "_ready", "_size", "_size_of", "bytes")

    def __init__(self, size_of: SizeOf = record_bytes) -> None:
        self._size_of = size_of
        self._lanes: dict[Lane, deque[WorkItem[Owner]]] = {}
        self._ready: deque[Lane] = deque()  # lanes with records in the backlog, round-robin
        self._size = 0
        self.bytes = 0  # key + value bytes in the backlog, to bound memory as well as count

    def __len__(self) -> int:
        return self._size

    def add(self, item: WorkItem[Owner]) -> None:
        queued = self._lanes.get(item.lane)
        if queued is None:
            queued = self._lanes[item.lane] = deque()
            self._ready.append(item.lane)
        queued.append(item)
        self._size += 1
        self.bytes += self._size_of(item)

    def take(self, limit: int) -> list[WorkItem[Owner]]:
        """Up to `limit` records, one per lane per round (unordered records in bulk)."""
        taken: list[WorkItem[Owner]] = []
        lanes, ready = self._lanes, self._ready
        while len(taken) < limit and ready:
            lane = ready.popleft()
            queued = lanes[lane]
            if lane is None:
                for _ in range(min(limit - len(taken), len(queued))):
                    taken.append(queued.popleft())
            else:
                taken.append(queued.popleft())
            if queued:
                ready.append(lane)
            else:
                del lanes[lane]
        self._size -= len(taken)
        self.bytes -= sum(map(self._size_of, taken))
        return taken

    def remove_if(self, doomed: Callable[[WorkItem[Owner]], bool]) -> None:
        """Drop the records that match (their partition was revoked)."""
        for lane in list(self._lanes):
            kept = deque(item for item in self._lanes[lane] if not doomed(item))
            self._size -= len(self._lanes[lane]) - len(kept)
            size_of = self._size_of
            self.bytes -= sum(map(size_of, self._lanes[lane])) - sum(map(size_of, kept))
            if kept:
                self._lanes[lane] = kept
            else:
                del self._lanes[lane]
        self._ready = deque(lane for lane in self._ready if lane in self._lanes)

    def clear(self) -> None:
        self._lanes.clear()
        self._ready.clear()
        self._size = 0
        self.bytes = 0
