"""A poll batch into work items (control/intake.py), on both twins: the same records, lanes,
ids and counts; errors to the callback; unassigned partitions and already completed offsets
left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from fake_messages import FakeKafkaError, FakeMessage
from native_twins import (
    IMPLEMENTATIONS,
    backlog_twin,
    intake_function,
    needs_native,
    partition_state_class,
)

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


class Collected(list[WorkItem[PartitionState]]):
    """A backlog stand-in that keeps what the intake adds, in order."""

    def add(self, item: WorkItem[PartitionState]) -> None:
        self.append(item)


def _fields(record: Any) -> tuple[Any, ...]:
    return tuple(
        getattr(record, name)
        for name in ("topic", "partition", "offset", "key", "value", "headers", "timestamp")
    )


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
    items = Collected()
    last_id, skipped = intake(messages, states, ordering, items, 41, 7.5, print)
    assert (last_id, skipped) == (48, 0)
    assert [i.id for i in items] == list(range(42, 49))
    lane_of = lane_function(ordering)
    for item, message in zip(items, messages, strict=True):
        expected = Record(
            TOPIC, message.partition(), message.offset(), message.key(), message.value(), None, 0
        )
        # Field by field: the native intake builds its own module's records even where the
        # pure twins are bound (PYRALLEL_NATIVE=0), and records of two classes never compare
        # equal.
        assert _fields(item.record) == _fields(expected)
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
    items = Collected()
    errors: list[object] = []
    last_id, skipped = intake(messages, {(TOPIC, 0): state}, "key", items, 0, 1.0, errors.append)
    assert errors == [error]
    assert (last_id, skipped) == (2, 2)
    assert [i.record.offset for i in items] == [0, 3]


def test_an_unknown_ordering_is_refused(intake: Any) -> None:
    with pytest.raises(ValueError, match="ordering must be"):
        intake([FakeMessage(TOPIC, 0, 0, None, None)], {}, "random", Collected(), 0, 0.0, print)


@pytest.mark.parametrize("backlog_of", IMPLEMENTATIONS)
@pytest.mark.parametrize("state_of", IMPLEMENTATIONS)
def test_a_backlog_and_partition_states_of_either_twin_receive_the_same(
    intake: Any, backlog_of: str, state_of: str
) -> None:
    """The native intake calls its own module's backlog and states in C and any other class
    through Python: every pairing queues the same items and records the same offsets."""
    state_class = partition_state_class(state_of)
    states = {(TOPIC, p): state_class(TOPIC, p, 1, already_completed={3}) for p in (0, 1)}
    backlog = backlog_twin(backlog_of).Backlog(1)
    messages = [FakeMessage(TOPIC, o % 2, o, b"k%d" % (o % 3), b"v") for o in range(8)]
    last_id, skipped = intake(messages, states, "key", backlog, 0, 2.0, print)
    assert (last_id, skipped, len(backlog), backlog.bytes) == (7, 1, 7, 21)
    taken = backlog.take(10)  # one per lane: the cap of 1 holds back a lane's second record
    assert sorted((i.record.partition, i.record.offset) for i in taken) == [
        (0, 0),
        (0, 2),
        (0, 4),
        (1, 1),
        (1, 5),
    ]
    assert all(i.owner is states[(TOPIC, i.record.partition)] for i in taken)
    assert [states[(TOPIC, p)].next_offset for p in (0, 1)] == [7, 8]
    assert [states[(TOPIC, p)].position for p in (0, 1)] == [0, 1]


@needs_native
def test_the_native_intake_hands_out_one_lane_object_per_key_and_partition() -> None:
    """Equal lanes as one tuple object (the lane dicts downstream then match by identity):
    a key's lane is kept by its partition state across poll batches, a partition's within one;
    distinct keys or partitions still get distinct, correct lanes, and so do more distinct keys
    than the cache keeps."""
    intake = intake_function("native")
    states = {(TOPIC, p): partition_state_class("native")(TOPIC, p, 1) for p in (0, 1)}
    by_key, by_partition = Collected(), Collected()
    first = [FakeMessage(TOPIC, o % 2, o, b"k%d" % (o % 3), b"v") for o in range(12)]
    intake(first, states, "key", by_key, 0, 1.0, print)
    intake([FakeMessage(TOPIC, 0, 12, b"k0", b"v")], states, "key", by_key, 12, 1.0, print)
    lanes: dict[tuple[Any, ...], int] = {}
    for item in by_key:
        assert item.lane == (TOPIC, item.record.partition, item.record.key)
        lanes.setdefault(item.lane, id(item.lane))
        assert id(item.lane) == lanes[item.lane]
    assert len(lanes) == 6
    intake(first, states, "partition", by_partition, 0, 1.0, print)
    assert {id(i.lane) for i in by_partition if i.record.partition == 0} == {
        id(by_partition[0].lane)
    }
    many = [FakeMessage(TOPIC, 0, 100 + o, b"u%d" % o, None) for o in range(10_000)]
    crowd = Collected()
    intake(many, states, "key", crowd, 0, 1.0, print)
    assert [i.lane for i in crowd] == [(TOPIC, 0, b"u%d" % o) for o in range(10_000)]


def test_confluent_kafka_messages_are_read_as_their_methods_return(intake: Any) -> None:
    # The native intake calls the C functions behind confluent-kafka's Message methods
    # directly: the records must hold what the methods return, errors included.
    import confluent_kafka

    def message(offset: int, **fields: Any) -> Any:
        return confluent_kafka.Message(topic=TOPIC, partition=0, offset=offset, **fields)

    error = confluent_kafka.KafkaError(confluent_kafka.KafkaError._PARTITION_EOF)
    messages = [
        message(0, key=b"a", value=b"v0", headers=[("h", b"1")], timestamp=(1, 1_700_000_000_123)),
        message(-1001, error=error),
        message(1, key=None, value=None, timestamp=(0, 0)),
        message(2, key=b"b", value=b"v2" * 50),
    ]
    state = PartitionState(TOPIC, 0, 1)
    items = Collected()
    errors: list[object] = []
    last_id, skipped = intake(messages, {(TOPIC, 0): state}, "key", items, 0, 2.0, errors.append)
    assert [e.code() for e in errors] == [confluent_kafka.KafkaError._PARTITION_EOF]  # type: ignore[attr-defined]
    assert (last_id, skipped) == (3, 0)
    read = [m for m in messages if m.error() is None]
    assert [_fields(i.record) for i in items] == [
        (TOPIC, 0, m.offset(), m.key(), m.value(), m.headers(), m.timestamp()[1]) for m in read
    ]
    assert [i.lane for i in items] == [(TOPIC, 0, m.key()) for m in read]
