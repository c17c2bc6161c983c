"""Batch assembly, on both twins: batches fill up to batch_size lane by lane, lanes are held by
their running batch and their waiting records follow in order, a partial batch goes out when
due or when no more records can arrive; the twins agree on random operation sequences."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, batch_assembly_twin, needs_native

from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem

_ids = iter(range(1, 1_000_000))


def item(lane: Hashable | None, offset: int) -> WorkItem[object]:
    return WorkItem(next(_ids), lane, Record("t", 0, offset, b"k", b"v"), None, 0.0)


@pytest.fixture(params=IMPLEMENTATIONS)
def BatchAssembler(request: pytest.FixtureRequest) -> Any:
    return batch_assembly_twin(request.param).BatchAssembler


def offsets(batch: Any) -> list[int]:
    return [i.record.offset for i in batch.items]


def test_unordered_records_fill_batches_and_the_rest_waits_for_max_wait(
    BatchAssembler: Any,
) -> None:
    assembly = BatchAssembler(batch_size=100, max_wait_s=0.5, capacity=10_000)
    assembly.add([item(None, n) for n in range(250)], now=10.0)
    full = assembly.take(now=10.0, running=False)
    assert [len(b.items) for b in full] == [100, 100]
    assert abs((assembly.due_in(now=10.2, running=False) or 0.0) - 0.3) < 1e-9
    assert assembly.take(now=10.4, running=False) == []
    (last,) = assembly.take(now=10.5, running=False)
    assert offsets(last) == list(range(200, 250))
    assert assembly.due_in(now=11.0, running=False) is None


def test_many_keys_share_a_batch_and_a_held_key_waits_for_its_batch(BatchAssembler: Any) -> None:
    assembly = BatchAssembler(batch_size=4, max_wait_s=1.0, capacity=10_000)
    assembly.add([item("a", 1), item("b", 2), item("a", 3), item("c", 4)], now=0.0)
    (first,) = assembly.take(now=0.0, running=False)
    assert offsets(first) == [1, 3, 2, 4]  # lane by lane: a key's records stay together
    assert first.lanes == ["a", "b", "c"]
    # a, b, c are held by the running batch; d is free.
    assembly.add([item("a", 5), item("d", 6), item("b", 7), item("a", 8)], now=0.1)
    (second,) = assembly.take(now=1.1, running=False)
    assert offsets(second) == [6]
    assembly.release(first, now=1.2)
    assembly.release(second, now=1.2)
    (third,) = assembly.take(now=2.2, running=False)
    lanes = {lane: [i.record.offset for i in third.items if i.lane == lane] for lane in "ab"}
    assert lanes == {"a": [5, 8], "b": [7]}  # each lane's records in offset order


def test_a_released_lane_longer_than_a_batch_continues_in_the_next_batch(
    BatchAssembler: Any,
) -> None:
    assembly = BatchAssembler(batch_size=3, max_wait_s=1.0, capacity=10_000)
    assembly.add([item("p", n) for n in range(8)], now=0.0)
    (first,) = assembly.take(now=0.0, running=False)
    assert offsets(first) == [0, 1, 2]
    assert assembly.take(now=5.0, running=False) == []  # the lane is held: nothing else may go
    assembly.release(first, now=5.0)
    (second,) = assembly.take(now=5.0, running=False)
    assert offsets(second) == [3, 4, 5]
    assembly.release(second, now=5.0)
    assert assembly.take(now=5.0, running=False) == []  # two records, not due yet
    (third,) = assembly.take(now=6.0, running=False)
    assert offsets(third) == [6, 7]
    assert [i.record.offset for i in assembly.open_items()] == []


def test_open_batch_goes_at_once_when_no_more_records_can_arrive(BatchAssembler: Any) -> None:
    assembly = BatchAssembler(batch_size=100, max_wait_s=60.0, capacity=30)
    assembly.add([item(n % 3, n) for n in range(30)], now=0.0)
    # While a batch runs, its end brings more records: keep filling.
    assert assembly.due_in(now=0.0, running=True) == 60.0
    assert assembly.due_in(now=0.0, running=False) == 0.0
    (batch,) = assembly.take(now=0.0, running=False)
    assert len(batch.items) == 30


def test_records_waiting_for_their_lane_are_listed_as_not_sent(BatchAssembler: Any) -> None:
    assembly = BatchAssembler(batch_size=2, max_wait_s=1.0, capacity=10_000)
    assembly.add([item("a", 1), item("a", 2), item("a", 3), item("b", 4)], now=0.0)
    (first,) = assembly.take(now=0.0, running=False)
    assert offsets(first) == [1, 2]
    assert sorted(i.record.offset for i in assembly.open_items()) == [3, 4]


def test_whole_lanes_fill_a_batch_oldest_first_so_other_lanes_stay_free(
    BatchAssembler: Any,
) -> None:
    assembly = BatchAssembler(batch_size=4, max_wait_s=1.0, capacity=10_000)
    # Round-robin arrival, as the control plane hands records out: a b c a b c ...
    assembly.add([item("abc"[n % 3], n) for n in range(6)], now=0.0)
    (first,) = assembly.take(now=0.0, running=False)
    assert offsets(first) == [0, 3, 1, 4]  # all of a, then b: c stays free
    assert first.lanes == ["a", "b"]
    assembly.add([item("c", 6), item("a", 7)], now=0.5)
    (second,) = assembly.take(now=1.0, running=True)  # c waited since 0.0
    assert offsets(second) == [2, 5, 6]
    assembly.release(first, now=1.0)
    assert [i.record.offset for i in assembly.open_items()] == [7]


@needs_native
@pytest.mark.parametrize("seed", range(20))
def test_the_twins_agree_on_random_operations(seed: int) -> None:
    rng = random.Random(seed)
    size, wait, capacity = rng.choice([1, 3, 8]), rng.choice([0.0, 0.5]), rng.choice([5, 40])
    pure = batch_assembly_twin("pure").BatchAssembler(size, wait, capacity)
    native = batch_assembly_twin("native").BatchAssembler(size, wait, capacity)
    running: list[tuple[Any, Any]] = []  # (pure batch, native batch), sent and not released
    now, offset = 0.0, 0
    for _ in range(200):
        now += rng.choice([0.0, 0.1, 0.6])
        step = rng.random()
        if step < 0.45:
            lanes = [rng.choice([None, "a", "b", ("t", 0, b"k")]) for _ in range(rng.randint(0, 6))]
            items = []
            for lane in lanes:
                offset += 1
                items.append(item(lane, offset))
            pure.add(items, now)
            native.add(items, now)
        elif step < 0.8:
            busy = bool(running)
            sent = list(zip(pure.take(now, busy), native.take(now, busy), strict=True))
            for a, b in sent:
                assert (offsets(a), a.lanes) == (offsets(b), list(b.lanes))
            running += sent
        elif running:
            a, b = running.pop(rng.randrange(len(running)))
            pure.release(a, now)
            native.release(b, now)
        busy = bool(running)
        assert pure.due_in(now, busy) == native.due_in(now, busy)
        assert [i.id for i in pure.open_items()] == [i.id for i in native.open_items()]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_piece_lists_give_records_and_ids_in_order_and_none_once_one_is_cancelled(
    implementation: str,
) -> None:
    piece_lists = batch_assembly_twin(implementation).piece_lists
    items = [item("a", 1), item(None, 2), item("b", 3)]
    assert piece_lists(items) == ([i.record for i in items], [i.id for i in items])
    assert piece_lists([]) == ([], [])
    items[1].cancelled = True
    assert piece_lists(items) is None
