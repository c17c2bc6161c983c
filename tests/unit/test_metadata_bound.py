"""PartitionState's blocking rule: the commit metadata always lists every completed offset above
the position, whatever completes after the check (control/partition_state.py, issue 17).

Each test plays the poll loop against a PartitionState and the real encoder: a poll batch is
delivered only while the partition is not blocked (backpressure pauses it before the next
consume() call), `check_fit` runs after every batch, `commit_point` only every few batches, and
the records received complete in some adversarial or key-ordered pattern while the lowest one
stays stuck. After every step the metadata of the current position must decode to exactly the
completed offsets above it: nothing cut.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, partition_state_class

import pyrallel_consumer.control.partition_state as partition_state_module
from pyrallel_consumer.control import offset_metadata


@pytest.fixture(params=IMPLEMENTATIONS)
def PartitionState(request: pytest.FixtureRequest) -> Any:
    """The pure-Python PartitionState, then the native one."""
    return partition_state_class(request.param)


class Loop:
    """The poll loop's side of one partition: delivery in batches, reports, commits."""

    def __init__(self, state: Any, offsets: Iterator[int], batch: int) -> None:
        self.state = state
        self._offsets = offsets
        self._batch = batch
        self.received: list[int] = []
        self.done: set[int] = set()
        self.blocked_batches = 0  # loop turns on which the partition was paused
        self.largest_metadata = 0

    def deliver(self) -> list[int]:
        """One consume() call: up to a batch, unless the partition is paused."""
        if self.state.blocked:
            self.blocked_batches += 1
            return []
        batch = [offset for _, offset in zip(range(self._batch), self._offsets, strict=False)]
        for offset in batch:
            assert self.state.receive(offset)
        self.received.extend(batch)
        self.state.check_fit()
        return batch

    def complete(self, offset: int) -> None:
        self.state.complete(offset)
        self.done.add(offset)

    def check_metadata(self, limit: int) -> None:
        """What a commit now would carry lists every completed offset above the position."""
        position = self.state.position
        assert position is not None
        above = {o for o in self.done if o > position}
        text, complete = offset_metadata.encode(position, above, limit)
        assert complete, f"metadata cut at position {position} with {len(above)} above"
        assert offset_metadata.decode(position, text) == above
        self.largest_metadata = max(self.largest_metadata, len(text))

    def commit(self, limit: int) -> None:
        point = self.state.commit_point()
        if point is not None:
            assert len(point.metadata) <= limit
            above = {o for o in self.done if o > point.position}
            assert offset_metadata.decode(point.position, point.metadata) == above
            self.state.mark_committed(*point)


def key_ordered(
    loop: Loop, keys: dict[int, int], stuck: int, rng: random.Random, steps: int, limit: int
) -> None:
    """Steps of key-ordered work: each key's records complete in offset order, a few per key
    per step; the `stuck` offset never does, so its key's later records wait behind it."""
    queues: dict[int, deque[int]] = {}
    for step in range(steps):
        for offset in loop.deliver():
            queues.setdefault(keys[offset], deque()).append(offset)
        for queue in queues.values():
            for _ in range(rng.randrange(0, 120)):
                if not queue or queue[0] == stuck:
                    break
                loop.complete(queue.popleft())
        loop.check_metadata(limit)
        if step % 10 == 9:
            loop.commit(limit)


def test_key_order_stuck_record_never_cuts_the_metadata(PartitionState: Any) -> None:
    # The input at the default limit and poll batch: 10 random keys, key order, the
    # record at offset 5 stuck; before the fix the list outgrew the limit and was halved.
    rng = random.Random(17)
    count = 60_000
    keys = {offset: rng.randrange(10) for offset in range(count)}
    state = PartitionState("t", 0, epoch=1)
    loop = Loop(state, iter(range(count)), batch=500)
    key_ordered(loop, keys, stuck=5, rng=rng, steps=150, limit=offset_metadata.MAX_METADATA_BYTES)
    assert state.blocked and loop.blocked_batches > 0  # it did stop taking records
    assert len(loop.received) < count
    # Thousands completed above the stuck record, all of them in the metadata.
    assert len(loop.done) > 10_000
    loop.commit(offset_metadata.MAX_METADATA_BYTES)
    assert state.committed == 5
    assert offset_metadata.decode(5, state.committed_metadata) == {o for o in loop.done if o > 5}

    # Released: everything completes, the partition unblocks and takes the rest.
    loop.complete(5)
    for offset in loop.received:
        if offset not in loop.done:
            loop.complete(offset)
    loop.commit(offset_metadata.MAX_METADATA_BYTES)
    assert not state.blocked
    assert state.committed == len(loop.received)
    assert loop.deliver()


def _half_at_random(
    PartitionState: Any,
    offsets: Iterator[int],
    limit: int,
    batch: int,
    steps: int,
    commit_every: int,
) -> Loop:
    """Every received record but the first completes with probability 1/2 and the rest never
    do: an incompressible pattern, whose metadata is as large as the bounds allow."""
    rng = random.Random(5)
    state = PartitionState("t", 0, epoch=1, metadata_limit=limit, poll_batch_size=batch)
    loop = Loop(state, offsets, batch)
    first: int | None = None
    for step in range(steps):
        for offset in loop.deliver():
            if first is None:
                first = offset
            elif rng.random() < 0.5:
                loop.complete(offset)
        loop.check_metadata(limit)
        if step % commit_every == commit_every - 1:
            loop.commit(limit)
        if loop.blocked_batches > commit_every:  # blocked across a commit: it stays so
            break
    return loop


@pytest.mark.parametrize(
    ("stride", "limit", "batch", "share"),
    [
        (1, 1024, 20, 3),  # consecutive offsets: bound (a), the bitset
        (2, 1024, 20, 3),  # a transaction marker after every record
        # Compacted, sparse offsets: bound (b), the run lengths. It must count the records
        # left incomplete as if they could all still complete, and here they never do.
        (300, 1024, 20, 8),
        (1, 4096, 100, 3),
    ],
)
def test_blocks_between_commits_before_the_list_can_outgrow(
    PartitionState: Any, stride: int, limit: int, batch: int, share: int
) -> None:
    # Commits are rare (every 50 batches): check_fit after each batch must block in time.
    loop = _half_at_random(
        PartitionState, iter(range(0, 10**9, stride)), limit, batch, steps=3_000, commit_every=50
    )
    assert loop.state.blocked
    # Blocked near the limit, not far below it: the bounds are not wildly pessimistic.
    assert loop.largest_metadata > limit // share


def test_sparse_incomplete_records_are_charged_by_their_gaps(PartitionState: Any) -> None:
    # Offsets jump by 1,000 at every 10th record: each such record costs its gap's varint.
    def offsets() -> Iterator[int]:
        offset = 0
        while True:
            yield offset
            offset += 1_000 if offset % 10 == 9 else 1

    loop = _half_at_random(PartitionState, offsets(), 512, batch=10, steps=2_000, commit_every=25)
    assert loop.state.blocked


def test_in_flight_window_with_a_stuck_record_keeps_flowing(PartitionState: Any) -> None:
    # Unordered work with one stuck record: everything else completes within a window of 300
    # records, so the run lengths stay tiny and the partition is never blocked, however far
    # the span grows past the bitset's reach.
    state = PartitionState("t", 0, epoch=1, poll_batch_size=100)
    loop = Loop(state, iter(range(10**9)), batch=100)
    rng = random.Random(9)
    window: list[int] = []
    for step in range(1_000):
        window.extend(o for o in loop.deliver() if o != 0)
        rng.shuffle(window)
        while len(window) > 300:
            loop.complete(window.pop())
        if step % 20 == 19:
            loop.check_metadata(offset_metadata.MAX_METADATA_BYTES)
            loop.commit(offset_metadata.MAX_METADATA_BYTES)
    assert loop.blocked_batches == 0
    assert len(loop.received) == 100_000
    assert state.position == 0


def test_idle_partition_is_never_blocked_even_when_one_batch_cannot_fit(
    PartitionState: Any,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A limit too small for one batch: warned about, and the partition still makes progress.
    # Warned once per process, by both twins: forget the other twin's warning.
    monkeypatch.setattr(partition_state_module, "_warned_too_small", set())
    caplog.set_level(logging.WARNING, logger="pyrallel_consumer")
    state = PartitionState("t", 3, epoch=1, metadata_limit=64, poll_batch_size=1_000)
    assert "offset.metadata.max.bytes=64 is too small for poll_batch_size=1000" in caplog.text
    for offset in range(1_000):
        state.receive(offset)
    state.check_fit()
    assert state.blocked
    for offset in range(1_000):
        state.complete(offset)
    state.check_fit()
    assert not state.blocked
    assert state.commit_point() == (1_000, "")


def test_a_cut_is_logged_once_at_error(
    PartitionState: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # ReportHandler the blocking rule never saw coming (check_fit never called): the commit
    # still fits, by cutting the list, and says that this is a bug.
    caplog.set_level(logging.ERROR, logger="pyrallel_consumer")
    state = PartitionState("orders", 2, epoch=1, metadata_limit=256)
    rng = random.Random(1)
    for offset in range(5_000):
        state.receive(offset)
        if offset and rng.random() < 0.5:
            state.complete(offset)
    for _ in range(2):
        point = state.commit_point()
        assert point is not None and len(point.metadata) <= 256
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "orders[2]" in errors[0].getMessage()
    assert "offset.metadata.max.bytes=256" in errors[0].getMessage()
