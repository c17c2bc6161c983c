"""A poll batch into work items (control/intake.py), on both twins: the same records, lanes,
ids and counts; errors to the callback; unassigned partitions and already completed offsets
left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fake_messages import FakeKafkaError, FakeMessage
from native_twins import IMPLEMENTATIONS, intake_function

from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem

TOPIC = "orders"


@dataclass
class ErroredMessage:
    """What consume() returns for an error instead of a record."""

    _error: FakeKafkaError

    def error(self) -> FakeKafkaError:
        return self._error


@pytest.fixture(params=IMPLEMENTATIONS)
def intake(request: pytest.FixtureRequest) -> Any:
    return intake_function(request.param)


@pytest.mark.parametrize("ordering", ["key", "partition", "unordered"])
def test_records_become_work_items_on_the_orderings_lanes(intake: Any, ordering: str) -> None:
    states = {(TOPIC, p): PartitionState(TOPIC, p, 1) for p in (0, 1)}
    messages = [
        *(FakeMessage(TOPIC, 0, o, b"k%d" % (o % 3), b"v%d" % o) for o in range(5)),
        *(FakeMessage(TOPIC, 1, o, None, None) for o in range(10, 12)),
    ]
    items: list[WorkItem[PartitionState]] = []
    last_id, skipped = intake(messages, states, ordering, items.append, 41, 7.5, print)
    assert (last_id, skipped) == (48, 0)
    assert [i.id for i in items] == list(range(42, 49))
    lane_of = lane_function(ordering)
    for item, message in zip(items, messages, strict=True):
        expected = Record(
            TOPIC, message.partition(), message.offset(), message.key(), message.value(), None, 0
        )
        assert item.record == expected
        assert item.lane == lane_of(expected)
        assert item.owner is states[(TOPIC, message.partition())]
        assert (item.received_at, item.dispatched_at, item.cancelled) == (7.5, 7.5, False)
    assert states[(TOPIC, 0)].next_offset == 5 and states[(TOPIC, 1)].next_offset == 12


def test_errors_unassigned_partitions_and_completed_offsets_are_left_out(intake: Any) -> None:
    state = PartitionState(TOPIC, 0, 1, committed=0, already_completed={1, 2})
    error = FakeKafkaError(1, "_SOME_ERROR", "broker went away")
    messages = [
        FakeMessage(TOPIC, 0, 0, b"a", b"v"),
        ErroredMessage(error),
        FakeMessage(TOPIC, 3, 0, b"a", b"v"),  # not assigned (revoked while queued)
        FakeMessage(TOPIC, 0, 1, b"a", b"v"),
        FakeMessage(TOPIC, 0, 2, b"a", b"v"),
        FakeMessage(TOPIC, 0, 3, b"a", b"v"),
    ]
    items: list[WorkItem[PartitionState]] = []
    errors: list[object] = []
    last_id, skipped = intake(
        messages, {(TOPIC, 0): state}, "key", items.append, 0, 1.0, errors.append
    )
    assert errors == [error]
    assert (last_id, skipped) == (2, 2)
    assert [i.record.offset for i in items] == [0, 3]


def test_an_unknown_ordering_is_refused(intake: Any) -> None:
    with pytest.raises(ValueError, match="ordering must be"):
        intake([FakeMessage(TOPIC, 0, 0, None, None)], {}, "random", print, 0, 0.0, print)
