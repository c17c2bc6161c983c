"""The work in flight (control/in_flight.py), on both twins, with backlogs and work items of
either twin: dispatched items are in flight with their dispatch time; settled ones leave it
and give their lane slots back, except those given back early; unknown ids are left out."""

from __future__ import annotations

from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, backlog_twin, in_flight_twin, records_twin

LANE_A, LANE_B = ("orders", 0, b"a"), ("orders", 0, b"b")


@pytest.fixture(params=IMPLEMENTATIONS)
def in_flight(request: pytest.FixtureRequest) -> Any:
    return in_flight_twin(request.param)


@pytest.mark.parametrize("backlog_of", IMPLEMENTATIONS)
@pytest.mark.parametrize("items_of", IMPLEMENTATIONS)
def test_settled_items_leave_flight_and_free_their_lanes(
    in_flight: Any, backlog_of: str, items_of: str
) -> None:
    twin = records_twin(items_of)
    backlog = backlog_twin(backlog_of).Backlog(1)  # one record per lane at a time
    for item_id, lane in enumerate([LANE_A, LANE_A, LANE_B, LANE_B], start=1):
        backlog.add(
            twin.WorkItem(item_id, lane, twin.Record("orders", 0, item_id, None, b""), None, 0.5)
        )
    flying: dict[int, Any] = {}
    taken = backlog.take(10)
    in_flight.dispatch(taken, flying, 3.25)
    assert sorted(flying) == [1, 3] and all(flying[i.id] is i for i in taken)
    assert [i.dispatched_at for i in taken] == [3.25, 3.25]
    assert backlog.take(10) == []  # both lanes at their cap

    released = {3}  # item 3 gave its slot back early (its outputs are being written)
    backlog.done(LANE_B)
    settled = in_flight.settle([3, 99, 1], flying, released, backlog)
    assert [i.id for i in settled] == [3, 1] and flying == {} and released == set()
    assert sorted(i.id for i in backlog.take(10)) == [2, 4]  # each lane freed exactly once
    assert in_flight.settle([1], flying, released, backlog) == []  # reported twice


@pytest.mark.parametrize("backlog_of", IMPLEMENTATIONS)
def test_a_batch_settled_lane_by_lane_gives_each_lane_all_its_slots_back(
    in_flight: Any, backlog_of: str
) -> None:
    twin = records_twin("native" if "native" in IMPLEMENTATIONS else "pure")
    backlog = backlog_twin(backlog_of).Backlog(2)  # two records per lane at a time
    lanes = [LANE_A, LANE_A, LANE_A, LANE_B, LANE_B, LANE_B]
    for item_id, lane in enumerate(lanes, start=1):
        backlog.add(
            twin.WorkItem(item_id, lane, twin.Record("orders", 0, item_id, None, b""), None, 0.0)
        )
    flying: dict[int, Any] = {}
    in_flight.dispatch(backlog.take(10), flying, 1.0)
    assert sorted(flying) == [1, 2, 4, 5] and backlog.take(10) == []  # both lanes at their cap
    # A batch's report lists its items lane by lane: runs of one lane.
    settled = in_flight.settle([1, 2, 4, 5], flying, set(), backlog)
    assert [i.id for i in settled] == [1, 2, 4, 5] and flying == {}
    assert sorted(i.id for i in backlog.take(10)) == [3, 6]  # both lanes back in rotation
    with pytest.raises(KeyError):  # a slot given back twice is a bug, as one at a time
        backlog.done(LANE_A)
        backlog.done(LANE_A)
