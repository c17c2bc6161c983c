"""The tracker, the one owner of record state: a poll batch received in one pass, work taken
round-robin under the lane cap, reports settled once, revoked partitions detached from the
backlog and the work in flight alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fake_messages import FakeKafkaError, FakeMessage

from pyrallel_consumer.config import build_config
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.topic_partition import TopicPartition

TOPIC = "orders"


def tracker(**options: Any) -> tuple[Tracker, Counters]:
    config = build_config(
        {"bootstrap.servers": "fake:9092", "group.id": "g"}, topics=[TOPIC], **options
    )
    counters = Counters()
    return Tracker(config, counters), counters


@dataclass
class ErroredMessage:
    """What consume() returns for an error instead of a record."""

    _error: FakeKafkaError

    def error(self) -> FakeKafkaError:
        return self._error


def messages(partition: int, offsets: range, keys: int = 2) -> list[FakeMessage]:
    return [FakeMessage(TOPIC, partition, o, b"k%d" % (o % keys), b"v") for o in offsets]


def test_a_poll_batch_is_received_in_one_pass_and_taken_round_robin_across_lanes() -> None:
    track, counters = tracker(ordering="key")
    track.attach([PartitionState(TOPIC, 0, 1), PartitionState(TOPIC, 1, 1)])
    track.receive([*messages(0, range(4)), *messages(1, range(2))], 5.0, on_error=print)
    assert (counters.received, track.backlog, track.in_flight) == (6, 6, 0)
    assert track.backlog_bytes == 6 * 3  # key b"k0" + value b"v"

    taken = track.take(3, now=6.0)
    # One record per lane per round: p0/k0, p0/k1, p1/k0 (lanes in arrival order).
    assert [(i.record.partition, i.record.offset) for i in taken] == [(0, 0), (0, 1), (1, 0)]
    assert all(i.received_at == 5.0 and i.dispatched_at == 6.0 for i in taken)
    assert (track.backlog, track.in_flight) == (3, 3)

    assert track.settle_all([taken[0].id, 999]) == [taken[0]]  # 999 was never in flight
    assert track.settle_all([taken[0].id]) == []  # settled once; a second report is ignored
    assert track.in_flight == 2


def test_errors_unknown_partitions_and_already_completed_offsets_are_not_tracked() -> None:
    """An errored message is an event, not a record: not tracked and not counted as received
    (before, `received` counted it, and a run subscribed to a missing topic reported one)."""
    track, counters = tracker()
    track.attach([PartitionState(TOPIC, 0, 1, committed=0, already_completed={1})])
    errors: list[object] = []
    error = FakeKafkaError(1, "_SOME_ERROR", "broker went away")
    batch: list[object] = [
        *messages(0, range(3)),
        ErroredMessage(error),
        *messages(7, range(2)),  # a partition not assigned (revoked while queued)
    ]
    track.receive(batch, 1.0, on_error=errors.append)  # type: ignore[arg-type]
    assert errors == [error]
    assert counters.received == 5  # the records, of partitions assigned or not
    assert counters.already_completed == 1
    assert sorted(i.record.offset for i in track.take(10, 2.0)) == [0, 2]


def test_the_lane_cap_holds_a_lane_until_its_record_is_settled() -> None:
    track, _ = tracker(ordering="partition", max_in_flight_per_lane=1)
    track.attach([PartitionState(TOPIC, 0, 1)])
    track.receive(messages(0, range(3)), 1.0, on_error=print)
    (first,) = track.take(10, 2.0)
    assert track.take(10, 2.0) == []  # the partition's lane is at its cap
    track.settle_all([first.id])
    assert [i.record.offset for i in track.take(10, 3.0)] == [1]


def test_detach_drops_the_backlog_and_cancels_the_work_in_flight_of_those_partitions() -> None:
    track, _ = tracker(ordering="unordered")
    kept, revoked = PartitionState(TOPIC, 0, 1), PartitionState(TOPIC, 1, 2)
    track.attach([kept, revoked])
    track.receive([*messages(0, range(2)), *messages(1, range(4))], 1.0, on_error=print)
    taken = track.take(4, 2.0)  # unordered: in arrival order
    assert track.busy_with([revoked])

    assert track.detach([TopicPartition(TOPIC, 1), TopicPartition(TOPIC, 5)]) == [revoked]
    assert list(track.partitions) == [TopicPartition(TOPIC, 0)]
    assert [i.cancelled for i in taken] == [False, False, True, True]
    assert track.backlog == 0  # partition 1's two waiting records were dropped
    assert track.busy_with([revoked])  # cancelled, still in flight until the engine reports
    track.settle_all(item.id for item in taken[2:])
    assert not track.busy_with([revoked]) and track.busy_with([kept])


def test_abandon_cancels_everything_in_flight_and_drops_the_backlog() -> None:
    track, _ = tracker()
    track.attach([PartitionState(TOPIC, 0, 1)])
    track.receive(messages(0, range(6), keys=6), 1.0, on_error=print)
    taken = track.take(2, 2.0)
    track.abandon()
    assert all(i.cancelled for i in taken) and track.backlog == 0 and track.in_flight == 2
