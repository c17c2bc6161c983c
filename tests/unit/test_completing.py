"""Records completing (control/completing.py), on both twins: offsets marked in their partition
states, and one Completion per record with the right fields, under one report or one each;
objects of other classes than the twins' own go the Python way with the same results."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, completing_twin, partition_state_class, records_twin

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.work import Outcome

TOPIC = "orders"


@dataclass
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass
class FakeItem:
    record: FakeRecord
    owner: Any
    received_at: float
    dispatched_at: float


@pytest.fixture(params=IMPLEMENTATIONS)
def completing(request: pytest.FixtureRequest) -> Any:
    return completing_twin(request.param)


def _items(kind: str, state: Any, offsets: list[int]) -> list[Any]:
    """Work items on `state`'s partition: the twins' own classes ("pure"/"native") or fakes."""
    if kind == "fake":
        return [
            FakeItem(FakeRecord(TOPIC, 0, o, b"k%d" % o), state, 1.0 + o, 2.0 + o) for o in offsets
        ]
    twin = records_twin(kind)
    items = []
    for o in offsets:
        item = twin.WorkItem(o, None, twin.Record(TOPIC, 0, o, b"k%d" % o, b"v"), state, 1.0 + o)
        item.dispatched_at = 2.0 + o
        items.append(item)
    return items


@pytest.mark.parametrize("items_of", [*IMPLEMENTATIONS, "fake"])
@pytest.mark.parametrize("state_of", IMPLEMENTATIONS)
def test_offsets_complete_in_their_partition_states(
    completing: Any, items_of: str, state_of: str
) -> None:
    state = partition_state_class(state_of)(TOPIC, 0, 1)
    for offset in range(5):
        state.receive(offset)
    completing.complete_offsets(_items(items_of, state, [1, 0, 3]))
    assert (state.position, state.completed_above) == (2, 1)
    completing.complete_offsets(_items(items_of, state, [2, 4]))
    assert (state.position, state.idle) == (5, True)


@pytest.mark.parametrize("items_of", [*IMPLEMENTATIONS, "fake"])
def test_completions_carry_each_records_report(completing: Any, items_of: str) -> None:
    twin = records_twin("native" if items_of == "native" else "pure")
    items = _items(items_of, None, [7, 8])
    one = twin.GroupReport([7, 8], Outcome.SUCCEEDED, 2, 9.5)
    failed = twin.Report(8, Outcome.FAILED, 3, 9.75, "Traceback ...")
    expected = [
        Completion(TOPIC, 0, 7, b"k7", 8.0, 9.5, 2, True, None, 9.0),
        Completion(TOPIC, 0, 8, b"k8", 9.0, 9.5, 2, True, None, 10.0),
    ]
    built = completing.completions(items, one, True)
    assert built == expected and all(type(c) is Completion for c in built)
    each = completing.completions(items, [one, failed], False)
    assert each == [
        expected[0]._replace(ok=False),
        Completion(TOPIC, 0, 8, b"k8", 9.0, 9.75, 3, False, "Traceback ...", 10.0),
    ]
    assert completing.completions([], one, True) == []


@pytest.mark.parametrize("items_of", [*IMPLEMENTATIONS, "fake"])
def test_completions_are_whole_named_tuples(completing: Any, items_of: str) -> None:
    """The native twin builds Completions without the named tuple's constructor: they must
    hash, compare, unpack, pickle and replace as those built by it (on 3.14+ a tuple caches its
    hash: a cache left at zero would hash every Completion to 0)."""
    twin = records_twin("native" if items_of == "native" else "pure")
    report = twin.GroupReport([7, 8], Outcome.SUCCEEDED, 1, 9.5)
    built = completing.completions(_items(items_of, None, [7, 8]), report, True)
    by_constructor = Completion(TOPIC, 0, 7, b"k7", 8.0, 9.5, 1, True, None, 9.0)
    assert hash(built[0]) == hash(by_constructor) == hash(tuple(by_constructor))
    assert hash(built[0]) != hash(built[1]) and {built[0]: 1}[by_constructor] == 1
    topic, partition, offset, *_ = built[0]
    assert (topic, partition, offset, len(built[0])) == (TOPIC, 0, 7, 10)
    assert pickle.loads(pickle.dumps(built[0])) == by_constructor
    assert built[0]._replace(offset=9).offset == 9 and built[0].dispatched_at == 9.0


@pytest.mark.parametrize("items_of", [*IMPLEMENTATIONS, "fake"])
@pytest.mark.parametrize("state_of", IMPLEMENTATIONS)
def test_only_records_of_partitions_still_assigned_are_live(
    completing: Any, items_of: str, state_of: str
) -> None:
    kept, revoked = (partition_state_class(state_of)(TOPIC, p, 1) for p in (0, 1))
    revoked.revoked = True
    items = [
        *_items(items_of, kept, [1, 2]),
        *_items(items_of, revoked, [3]),
        *_items(items_of, kept, [4]),
    ]
    assert [i.record.offset for i in completing.unrevoked(items)] == [1, 2, 4]
    assert completing.unrevoked([]) == []
