"""Backlog: lanes taken round-robin, unordered records in bulk, revoked records dropped."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, backlog_twin

from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem


@pytest.fixture(params=IMPLEMENTATIONS)
def Backlog(request: pytest.FixtureRequest) -> Any:
    """The pure-Python Backlog, then the native one."""
    return backlog_twin(request.param).Backlog


_ids = iter(range(1, 1_000_000))


def item(lane: Hashable | None, offset: int, partition: int = 0, value: bytes = b"v") -> WorkItem:
    record = Record("t", partition, offset, b"k", value)
    return WorkItem(next(_ids), lane, record, owner=partition, received_at=0.0)


def offsets(items: list[WorkItem]) -> list[tuple[Hashable | None, int]]:
    return [(i.lane, i.record.offset) for i in items]


def test_round_robin_across_lanes_keeps_lane_order(Backlog: Any) -> None:
    backlog = Backlog()
    for lane, offset in [("a", 1), ("a", 2), ("a", 3), ("b", 4), ("c", 5), ("c", 6)]:
        backlog.add(item(lane, offset))
    assert len(backlog) == 6
    taken = backlog.take(10)
    assert offsets(taken) == [("a", 1), ("b", 4), ("c", 5), ("a", 2), ("c", 6), ("a", 3)]
    assert len(backlog) == 0
    assert backlog.bytes == 0


def test_take_respects_limit_and_resumes_the_rotation(Backlog: Any) -> None:
    backlog = Backlog()
    for lane, offset in [("a", 1), ("a", 2), ("b", 3), ("b", 4), ("c", 5)]:
        backlog.add(item(lane, offset))
    assert offsets(backlog.take(2)) == [("a", 1), ("b", 3)]
    assert len(backlog) == 3
    assert offsets(backlog.take(2)) == [("c", 5), ("a", 2)]
    assert offsets(backlog.take(5)) == [("b", 4)]
    assert backlog.take(5) == []


def test_unordered_records_are_taken_in_bulk(Backlog: Any) -> None:
    backlog = Backlog()
    for offset in range(5):
        backlog.add(item(None, offset))
    backlog.add(item("k", 99))
    taken = backlog.take(4)
    assert offsets(taken) == [(None, 0), (None, 1), (None, 2), (None, 3)]
    assert offsets(backlog.take(4)) == [("k", 99), (None, 4)]


def test_bytes_track_key_and_value_sizes(Backlog: Any) -> None:
    backlog = Backlog()
    backlog.add(item("a", 1, value=b"x" * 10))  # key b"k": 11 bytes
    backlog.add(item("b", 2, value=b"x" * 20))
    assert backlog.bytes == 32
    backlog.take(1)
    assert backlog.bytes == 21


def test_remove_if_drops_matching_and_keeps_the_rest_in_order(Backlog: Any) -> None:
    backlog = Backlog()
    for lane, offset, partition in [
        ("a", 1, 0),
        ("a", 2, 1),
        ("a", 3, 0),
        ("b", 4, 1),
        ("c", 5, 0),
        (None, 6, 1),
        (None, 7, 0),
    ]:
        backlog.add(item(lane, offset, partition))
    backlog.remove_if(lambda i: i.record.partition == 1)
    assert len(backlog) == 4
    assert backlog.bytes == 4 * 2
    assert offsets(backlog.take(10)) == [("a", 1), ("c", 5), (None, 7), ("a", 3)]
    assert len(backlog) == 0


def test_remove_if_then_add_to_a_removed_lane(Backlog: Any) -> None:
    backlog = Backlog()
    backlog.add(item("a", 1, 1))
    backlog.add(item("b", 2, 0))
    backlog.remove_if(lambda i: i.record.partition == 1)
    backlog.add(item("a", 3, 0))
    assert offsets(backlog.take(10)) == [("b", 2), ("a", 3)]


def test_clear(Backlog: Any) -> None:
    backlog = Backlog()
    for offset in range(3):
        backlog.add(item("a", offset))
    backlog.clear()
    assert len(backlog) == 0
    assert backlog.bytes == 0
    assert backlog.take(3) == []


def test_a_lane_at_its_cap_is_skipped_until_one_of_its_records_is_done(Backlog: Any) -> None:
    backlog = Backlog(lane_cap=2)
    for lane, offset in [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 5), ("b", 6)]:
        backlog.add(item(lane, offset))
    assert offsets(backlog.take(10)) == [("a", 1), ("b", 5), ("a", 2), ("b", 6)]
    assert len(backlog) == 2  # a's other records wait here, not in flight
    assert backlog.take(10) == []
    backlog.add(item("a", 7))  # a record of a lane at its cap does not enter the rotation
    assert backlog.take(10) == []
    backlog.done("b")  # b has nothing queued: still nothing to take
    assert backlog.take(10) == []
    backlog.done("a")
    assert offsets(backlog.take(10)) == [("a", 3)]
    backlog.done("a")
    backlog.done("a")
    assert offsets(backlog.take(10)) == [("a", 4), ("a", 7)]


def test_a_lane_under_its_cap_takes_a_new_record_at_once(Backlog: Any) -> None:
    backlog = Backlog(lane_cap=2)
    backlog.add(item("a", 1))
    assert offsets(backlog.take(10)) == [("a", 1)]
    backlog.add(item("a", 2))
    assert offsets(backlog.take(10)) == [("a", 2)]
    backlog.add(item("a", 3))
    assert backlog.take(10) == []
    backlog.done("a")
    assert offsets(backlog.take(10)) == [("a", 3)]


def test_unordered_records_are_never_capped(Backlog: Any) -> None:
    backlog = Backlog(lane_cap=1)
    for offset in range(5):
        backlog.add(item(None, offset))
    assert len(backlog.take(10)) == 5
    backlog.done(None)  # accepted, nothing counted


def test_a_revoked_lane_at_its_cap_is_dropped_and_comes_back_under_its_cap(Backlog: Any) -> None:
    backlog = Backlog(lane_cap=1)
    backlog.add(item("a", 1, partition=0))
    backlog.add(item("a", 2, partition=0))
    assert offsets(backlog.take(10)) == [("a", 1)]
    backlog.remove_if(lambda work: work.record.partition == 0)
    assert len(backlog) == 0
    backlog.done("a")  # the in-flight record's report arrives later (cancelled)
    backlog.add(item("a", 3, partition=0))  # the partition was assigned again
    assert offsets(backlog.take(10)) == [("a", 3)]


def test_ready_counts_what_take_would_hand_out_through_any_sequence(Backlog: Any) -> None:
    """`ready` (the poll loop's measure of records it need not consume more for) against a
    model of the queues: per lane, its queued records up to its room under the cap, every
    unordered one; after random adds, takes, dones, revokes and clears."""
    rng = random.Random(7)
    cap = 3
    backlog = Backlog(lane_cap=cap)
    queued: dict[Hashable | None, list[WorkItem]] = {}
    taken: list[Hashable | None] = []  # lanes of records taken and not done

    def model_ready() -> int:
        return sum(
            len(items) if lane is None else min(len(items), cap - taken.count(lane))
            for lane, items in queued.items()
        )

    for step in range(4000):
        op = rng.random()
        if op < 0.45:
            new = item(rng.choice(["a", "b", "c", "d", None]), step, partition=rng.randrange(3))
            backlog.add(new)
            queued.setdefault(new.lane, []).append(new)
        elif op < 0.7:
            for got in backlog.take(rng.randrange(1, 6)):
                queued[got.lane].remove(got)
                taken.append(got.lane)
        elif op < 0.97:
            if taken:
                backlog.done(taken.pop(rng.randrange(len(taken))))
        elif op < 0.99:
            revoked = rng.randrange(3)
            backlog.remove_if(lambda work, revoked=revoked: work.record.partition == revoked)
            queued = {
                lane: [i for i in items if i.record.partition != revoked]
                for lane, items in queued.items()
            }
        else:
            backlog.clear()
            queued = {}
        assert backlog.ready == model_ready(), step
    assert len(backlog.take(10**6)) == model_ready()
