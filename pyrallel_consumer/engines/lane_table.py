"""The lane table of the lane runners (lanes.py, coroutine_lanes.py): which lanes have an item
running, and the items waiting behind it, in submission order.

`admit(item)` once per item submitted, `release(lane)` once per item finished: twice per
record on the runner's thread (the event loop's, or a process worker's pool threads), so a
native twin (ext/lane_table.pxi, in pyrallel_consumer._record_path) does the same in C when
built (pyrallel_consumer/native.py): 240-265 ns per item for the pure pair against 158-172
for the native one (timeit, 1,000 items over 100 or 1,000 lanes, the calling loop included).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.work import Lane, WorkItem

Item = WorkItem[object]

# A lane whose running item has nobody behind it: no deque is built for it, as most lanes never
# have more than one item in flight (the control plane's max_in_flight_per_lane).
_NO_QUEUE: deque[Item] = deque()


class Lanes:
    """Items waiting behind the running item of their lane (module doc). Not thread-safe:
    callers lock."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        # The lanes with a running item; _NO_QUEUE until an item waits behind it. Never
        # appended to: admit builds the lane's own deque first.
        self._waiting: dict[Lane, deque[Item]] = {}

    def admit(self, item: Item) -> bool:
        """True when the item may run now; otherwise it waits for its lane."""
        lane = item.lane
        if lane is None:
            return True
        waiting = self._waiting.get(lane)
        if waiting is None:
            self._waiting[lane] = _NO_QUEUE
            return True
        if waiting is _NO_QUEUE:
            self._waiting[lane] = deque((item,))
        else:
            waiting.append(item)
        return False

    def release(self, lane: Lane) -> Item | None:
        """The item of `lane` that may run now that the previous one finished, if any."""
        if lane is None:
            return None
        waiting = self._waiting[lane]
        if waiting:
            return waiting.popleft()
        del self._waiting[lane]
        return None

    def take_waiting(self) -> list[Item]:
        """The items waiting behind a running item, lane by lane in submission order, taken
        out: their lanes stay held until their running items are released."""
        taken: list[Item] = []
        for lane, waiting in self._waiting.items():
            if waiting:
                taken.extend(waiting)
                self._waiting[lane] = _NO_QUEUE
        return taken

    def __len__(self) -> int:
        return len(self._waiting)


# The native twin (ext/lane_table.pxi) replaces the name above when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the pure-Python
# definition. PURE_TWIN keeps it reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "lanes", ("Lanes",))
