"""The backlog: records received but not yet handed on, queued per lane.

Kafka returns records a partition at a time, so a plain FIFO window of `max_in_flight` records
would hold only the few keys of one partition and leave most lanes idle (measured: 2,400/s
instead of 20,000/s for 100 keys x 5 ms). Taking records round-robin across lanes spreads the
in-flight window over every key that has work.

The per-lane cap (the control plane's): at most `lane_cap` records of one lane are taken and
not yet `done` at a time. A lane runs one record at a time, so a slow or stuck key would
otherwise fill the in-flight window with records that only wait behind it (seen: 63 of 200
records of seven other keys completed, then nothing). With the cap, those records wait here,
against the backlog's bounds, and a stuck lane holds at most `lane_cap` in-flight slots.
Unordered records (lane None) are never capped: they do not wait behind each other, so a stuck
one holds only its own slot.

Owned by the control plane's tracker (control/tracker.py: records queued for in-flight room);
it lives at the top of the package beside `work.py`, whose words it uses, and has a native
twin (ext/backlog.pxi). Not thread-safe, and needs not be: only the control thread, through
the tracker, ever touches it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from pyrallel_consumer.native import bind_twin
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
    """Work items per lane, taken round-robin across lanes; counts items and key+value bytes.

    With `lane_cap`, a lane with `lane_cap` records taken and not yet `done` is skipped by
    `take` until `done(lane)` is called for one of them. `size_of` gives an item's bytes
    (`batch_bytes` for batch-mode items).
    """

    __slots__ = ("_beyond", "_cap", "_lanes", "_ready", "_size", "_size_of", "_taken", "bytes")

    def __init__(self, lane_cap: int | None = None, size_of: SizeOf = record_bytes) -> None:
        self._size_of = size_of
        self._lanes: dict[Lane, deque[WorkItem[Owner]]] = {}
        # Lanes with records in the backlog and under their cap, round-robin. A lane at its cap
        # keeps its queue in `_lanes` but leaves `_ready` until `done` makes room.
        self._ready: deque[Lane] = deque()
        self._size = 0
        self.bytes = 0  # key + value bytes in the backlog, to bound memory as well as count
        self._cap = lane_cap or 0
        # Per lane: records taken and not done yet (absent when 0). None: no cap.
        self._taken: dict[Lane, int] | None = None if lane_cap is None else {}
        self._beyond = 0  # records queued beyond their lane's room under its cap

    def __len__(self) -> int:
        return self._size

    @property
    def ready(self) -> int:
        """Records `take` would hand out now, given the room: per lane, its queued records up
        to its room under the cap (all of them without a cap, and for unordered records)."""
        return self._size - self._beyond

    def _beyond_room(self, lane: Lane, queued: int) -> int:
        """Of `queued` records of `lane`, those beyond its room under the cap."""
        counts = self._taken
        if counts is None or lane is None:
            return 0
        return max(0, queued - (self._cap - counts.get(lane, 0)))

    def add(self, item: WorkItem[Owner]) -> None:
        lane = item.lane
        queued = self._lanes.get(lane)
        if queued is None:
            queued = self._lanes[lane] = deque()
            counts = self._taken
            if counts is None or lane is None or counts.get(lane, 0) < self._cap:
                self._ready.append(lane)
        # One more beyond the room when the queue already fills it (a lane over its cap has
        # none).
        self._beyond += self._beyond_room(lane, len(queued) + 1) > 0
        queued.append(item)
        self._size += 1
        self.bytes += self._size_of(item)

    def take(self, limit: int) -> list[WorkItem[Owner]]:
        """Up to `limit` records, one per lane per round (unordered records in bulk); fewer
        when the other lanes are at their cap."""
        # Taking one record of a lane takes one from its room too: what is beyond stays.
        taken: list[WorkItem[Owner]] = []
        lanes, ready, counts, cap = self._lanes, self._ready, self._taken, self._cap
        while len(taken) < limit and ready:
            lane = ready.popleft()
            queued = lanes[lane]
            if lane is None:
                for _ in range(min(limit - len(taken), len(queued))):
                    taken.append(queued.popleft())
            else:
                taken.append(queued.popleft())
                if counts is not None:
                    count = counts[lane] = counts.get(lane, 0) + 1
                    if count >= cap:
                        if not queued:
                            del lanes[lane]
                        continue  # parked: `done` puts it back in the rotation
            if queued:
                ready.append(lane)
            else:
                del lanes[lane]
        self._size -= len(taken)
        self.bytes -= sum(map(self._size_of, taken))
        return taken

    def done(self, lane: Lane) -> None:
        """One record of `lane` taken from this backlog finished (reported, in any way); a lane
        at its cap takes its turn again. Only for a backlog with a cap."""
        counts = self._taken
        if counts is None or lane is None:
            return
        queued = len(self._lanes.get(lane, ()))
        self._beyond -= self._beyond_room(lane, queued)
        count = counts.pop(lane) - 1
        if count:
            counts[lane] = count
        self._beyond += self._beyond_room(lane, queued)
        if count == self._cap - 1 and lane in self._lanes:
            self._ready.append(lane)

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
        self._beyond = sum(
            self._beyond_room(lane, len(queued)) for lane, queued in self._lanes.items()
        )

    def clear(self) -> None:
        self._lanes.clear()
        self._ready.clear()
        self._size = 0
        self._beyond = 0
        self.bytes = 0


# The native twin (ext/backlog.pxi) replaces the names above when built, unless PYRALLEL_NATIVE=0
# (native.py). Hidden from mypy, which checks against the pure-Python definitions. PURE_TWIN
# keeps those reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "backlog", ("Backlog", "record_bytes", "batch_bytes"))
