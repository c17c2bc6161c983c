"""Which worker process runs each record (the process engine's placement).

A lane's records must run one at a time, in order: the worker holding some of them keeps that
order itself (process_worker.py), so while a worker holds records of a lane (queued in the
parent, in its pipe, running, or waiting to be redone after a death) the lane's next records
go to that worker too. A lane that no worker holds goes to the worker holding the fewest
records of lanes. Unordered records (lane None) are dealt round-robin.

Why not a fixed shard per lane (`hash(lane) % workers`, the rule before this one): with 100
keys over 2 workers, the busier worker got 8% more lanes than its share at the median of 40
hash seeds and 28% more at the worst (the topic's str hash changes with each process), and a
CPU-bound run ends when the busier worker does. The cpu workload of `python -m bench` ran at
1.58-1.75x the baseline engine across runs with the fixed shard (bench/README).

The records a worker holds are counted from `place` until their report comes back through
`reported` (every record handed to the engine is reported exactly once: Engine interface),
all on the control thread, so no lock is needed and no path that ends a record can forget to
release its lane. A native twin (ext/lane_placement.pxi) does the same in C when built
(native.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.work import GroupReport, Lane, Report, WorkItem

Item = WorkItem[object]


class LanePlacement:
    """Places work items on `workers` workers (module doc). Control thread only."""

    __slots__ = ("_held", "_lanes", "_load", "_next_unordered", "_workers")

    def __init__(self, workers: int) -> None:
        """Raises ValueError when `workers` < 1."""
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self._workers = workers
        # Per lane held by a worker: [that worker's index, how many of its records it holds].
        self._lanes: dict[Lane, list[int]] = {}
        self._held: dict[int, Lane] = {}  # the id of each placed record of a lane -> its lane
        self._load = [0] * workers  # records of lanes each worker holds
        self._next_unordered = 0  # the worker the next unordered record goes to

    def place(self, items: Sequence[Item]) -> list[list[Item]]:
        """The items each worker is to run, in submission order: `[worker 0's, worker 1's, ...]`."""
        placed: list[list[Item]] = [[] for _ in range(self._workers)]
        unordered: list[Item] = []
        lanes, held, load = self._lanes, self._held, self._load
        for item in items:
            lane = item.lane
            if lane is None:
                unordered.append(item)
                continue
            entry = lanes.get(lane)
            if entry is None:
                entry = lanes[lane] = [load.index(min(load)), 0]
            entry[1] += 1
            load[entry[0]] += 1
            held[item.id] = lane
            placed[entry[0]].append(item)
        if unordered:
            # Unordered record j of this call goes to worker (start + j) % workers.
            n, start = self._workers, self._next_unordered
            for k in range(n):
                placed[(start + k) % n].extend(unordered[k::n])
            self._next_unordered = (start + len(unordered)) % n
        return placed

    def reported(self, reports: Iterable[Report]) -> None:
        """These records' reports came back: their workers no longer hold them."""
        for report in reports:
            if type(report) is GroupReport:
                self._release(report.ids)
            else:
                self._release((report.id,))

    def _release(self, ids: Iterable[int]) -> None:
        held, lanes, load = self._held, self._lanes, self._load
        for item_id in ids:
            lane = held.pop(item_id, None)
            if lane is None:
                continue  # unordered (never counted), or reported twice
            entry = lanes[lane]
            load[entry[0]] -= 1
            entry[1] -= 1
            if not entry[1]:
                del lanes[lane]


# The native twin (ext/lane_placement.pxi) replaces the name above when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the pure-Python
# definition. PURE_TWIN keeps it reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "lane_placement", ("LanePlacement",))
