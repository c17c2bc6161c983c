"""The work in flight, per turn in one pass: items handed to the engine enter the in-flight map
(`dispatch`), reported ones leave it and give their lane slots back (`settle`).

The tracker (tracker.py) owns the map, the backlog and the set of items whose lane slots were
given back early; these functions are its per-record loops, kept apart so that a native twin
(ext/in_flight.pxi, in pyrallel_consumer._record_path) can run them in C when built
(pyrallel_consumer/native.py).

Ownership: the control thread (called by tracker.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from pyrallel_consumer.backlog import Backlog
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.work import WorkItem

Item = WorkItem[PartitionState]


def dispatch(items: Sequence[Item], in_flight: dict[int, Item], now: float) -> None:
    """Put `items` in flight, by id, dispatched at `now` (monotonic seconds)."""
    for item in items:
        in_flight[item.id] = item
        item.dispatched_at = now


def settle(
    item_ids: Iterable[int],
    in_flight: dict[int, Item],
    released: set[int],
    backlog: Backlog[PartitionState],
) -> list[Item]:
    """Take the items of `item_ids` out of flight and give their lane slots back to `backlog`
    (`done`), except those in `released` (given back already; they leave the set). Returns the
    items that were in flight, in `item_ids` order; an id not in flight is left out."""
    pop, done = in_flight.pop, backlog.done
    items = []
    for item_id in item_ids:
        item = pop(item_id, None)
        if item is not None:
            if released and item_id in released:
                released.discard(item_id)
            else:
                done(item.lane)
            items.append(item)
    return items


# The native twin (ext/in_flight.pxi) replaces the names above when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the pure-Python
# definitions. PURE_TWIN keeps them reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "in_flight", ("dispatch", "settle"))
