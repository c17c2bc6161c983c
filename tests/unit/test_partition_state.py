"""PartitionState: which offsets were received and completed, and what to commit."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, partition_state_class

from pyrallel_consumer.control.offset_metadata import MAX_METADATA_BYTES, decode


@pytest.fixture(params=IMPLEMENTATIONS)
def PartitionState(request: pytest.FixtureRequest) -> Any:
    """The pure-Python PartitionState, then the native one."""
    return partition_state_class(request.param)


@pytest.fixture
def new_state(PartitionState: Any) -> Callable[..., Any]:
    def make(committed: int | None = None, already_completed: set[int] | None = None) -> Any:
        return PartitionState(
            "t", 0, epoch=1, committed=committed, already_completed=already_completed
        )

    return make


def test_nothing_received_commits_nothing(new_state: Callable[..., Any]) -> None:
    state = new_state()
    assert state.position is None
    assert state.commit_point() is None


def test_position_is_lowest_incomplete_offset(new_state: Callable[..., Any]) -> None:
    state = new_state()
    for offset in range(5):
        assert state.receive(offset)
    assert state.position == 0
    state.complete(2)
    state.complete(1)
    assert state.position == 0
    assert state.incomplete == 3
    assert state.completed_above == 2
    point = state.commit_point()
    assert point is not None
    position, metadata = point
    assert position == 0
    assert decode(0, metadata) == {1, 2}
    state.complete(0)
    assert state.position == 3
    assert state.completed_above == 0
    state.complete(4)
    state.complete(3)
    assert state.position == 5
    assert state.commit_point() == (5, "")


def test_gaps_in_offsets_are_not_waited_for(new_state: Callable[..., Any]) -> None:
    # Compaction and transaction markers leave holes: only received offsets count.
    state = new_state()
    for offset in (10, 13, 17):
        state.receive(offset)
    state.complete(10)
    assert state.position == 13
    state.complete(17)
    point = state.commit_point()
    assert point is not None
    assert point[0] == 13
    assert decode(13, point[1]) == {17}
    state.complete(13)
    assert state.position == 18
    assert state.incomplete == 0


def test_already_completed_from_metadata(new_state: Callable[..., Any]) -> None:
    state = new_state(committed=5, already_completed={7, 8})
    assert state.receive(5)
    assert state.receive(6)
    assert not state.receive(7)
    assert not state.receive(8)
    assert state.receive(9)
    assert state.position == 5
    state.complete(5)
    assert state.position == 6
    point = state.commit_point()
    assert point is not None
    assert decode(point[0], point[1]) == {7, 8}  # the already completed ones are still reported
    state.complete(6)
    assert state.position == 9
    state.complete(9)
    assert state.position == 10


def test_already_completed_offset_with_nothing_pending_advances_position(
    new_state: Callable[..., Any],
) -> None:
    state = new_state(committed=5, already_completed={6})
    assert state.receive(5)
    state.complete(5)
    assert not state.receive(6)
    assert state.position == 7
    assert state.commit_point() == (7, "")


def test_commit_point_none_when_unchanged(new_state: Callable[..., Any]) -> None:
    state = new_state()
    state.receive(0)
    state.receive(1)
    state.complete(1)
    point = state.commit_point()
    assert point is not None
    state.mark_committed(*point)
    assert state.committed == 0
    assert state.commit_point() is None
    state.complete(0)
    assert state.commit_point() == (2, "")


def test_blocked_when_metadata_does_not_fit_and_unblocked_when_gap_closes(
    new_state: Callable[..., Any],
) -> None:
    state = new_state()
    rng = random.Random(3)
    count = 40_000
    for offset in range(count):
        state.receive(offset)
    # Offset 0 stays incomplete; a random half of the rest complete: incompressible gaps.
    completed = {o for o in range(1, count) if rng.random() < 0.5}
    for offset in sorted(completed):
        state.complete(offset)
    point = state.commit_point()
    assert point is not None
    position, metadata = point
    assert position == 0
    assert state.blocked
    assert len(metadata) <= MAX_METADATA_BYTES
    assert decode(0, metadata) <= completed
    state.complete(0)
    for offset in range(1, count):
        if offset not in completed:
            state.complete(offset)
    point = state.commit_point()
    assert point == (count, "")
    assert not state.blocked


def test_metadata_limit_keyword_sets_where_the_partition_blocks(PartitionState: Any) -> None:
    # Same records, same completions: the cluster's limit decides. 10,000 open offsets always
    # fit 4096 bytes as a bitset; at a 1024-byte limit one poll batch more might not.
    small = PartitionState("t", 0, epoch=1, metadata_limit=1024, poll_batch_size=100)
    default = PartitionState("t", 0, epoch=1, poll_batch_size=100)
    for state in (small, default):
        for offset in range(10_000):
            state.receive(offset)
            if offset % 3:
                state.complete(offset)
        state.check_fit()
    assert small.blocked
    assert not default.blocked
    point = small.commit_point()
    assert point is not None and len(point.metadata) <= 1024
    assert decode(0, point.metadata) == {o for o in range(10_000) if o % 3}


def test_offset_gaps_count_against_the_limit_until_their_records_complete(
    PartitionState: Any,
) -> None:
    # Groups of 10 consecutive offsets, 1,000 apart (a compacted topic): past the bitset's
    # reach. While they may still complete in any pattern, each record counts (the first of a
    # group its gap too); once completed, only their real run lengths do.
    state = PartitionState("t", 0, epoch=1, metadata_limit=1024, poll_batch_size=10)
    offsets = [group * 1_000 + i for group in range(70) for i in range(10)]
    for offset in offsets:
        state.receive(offset)
    state.check_fit()
    assert state.blocked
    for offset in offsets[1:]:
        state.complete(offset)
    point = state.commit_point()
    assert point is not None
    assert decode(0, point.metadata) == set(offsets[1:])
    assert not state.blocked
