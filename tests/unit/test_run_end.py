"""Batch jobs that end: run(until_end=...) and idle_timeout, over the fake client and engine."""

from __future__ import annotations

from control_fakes import TOPIC, FakeClient, FakeClock, Script, harness, tp

from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.run_end import CHECK_INTERVAL_S, RunEnd
from pyrallel_consumer.topic_partition import TopicPartition


def test_until_end_stops_once_every_partition_completed_to_its_end_and_commits_it() -> None:
    h = harness(hold=lambda item: (item.record.partition, item.record.offset) == (0, 3))
    h.client.produce(0, 10)
    h.client.produce(1, 4)
    h.client.produce(2, 0)  # empty: at its end from the start
    h.client.rebalance("assign", 0, 1, 2)
    # Offset 3 of partition 0 is held a while: the run must not end before it completes.
    start = h.clock()
    h.script.when(lambda: h.clock() > start + 20.0, lambda: h.engine.release(3))
    completed = h.loop.run(None, 600.0, RunEnd(True, None, h.clock))
    assert completed == 14
    assert h.client.closed
    assert h.client.last_commit(0) == (10, "")
    assert h.client.last_commit(1) == (4, "")
    assert start + 20.0 < h.clock() < start + 600.0  # ended on its own once 3 completed


def test_until_end_waits_for_an_assignment() -> None:
    h = harness()
    h.client.produce(0, 3)
    start = h.clock()
    h.script.when(lambda: h.clock() > start + 30.0, lambda: h.client.rebalance("assign", 0))
    assert h.loop.run(None, 600.0, RunEnd(True, None, h.clock)) == 3
    assert h.clock() >= start + 30.0


def test_idle_timeout_stops_when_nothing_arrives_and_nothing_is_in_flight() -> None:
    h = harness(hold=lambda item: item.record.offset == 1)
    h.client.produce(0, 3)
    h.client.rebalance("assign", 0)
    # Held work counts as activity: the run lasts at least until it is released.
    start = h.clock()
    h.script.when(lambda: h.clock() > start + 50.0, lambda: h.engine.release(1))
    completed = h.loop.run(None, 600.0, RunEnd(False, 5.0, h.clock))
    assert completed == 3
    assert start + 55.0 <= h.clock() < start + 600.0
    assert h.client.last_commit(0) == (3, "")


def test_idle_time_counts_from_when_the_engine_is_ready() -> None:
    # The engine takes 30 s to start (process workers running a slow worker_init), and the
    # group join 3 s more: the start is not idleness, so a 5 s idle timeout does not end the
    # run before its records arrive (the loop's first turn starts the idle clock).
    h = harness()
    h.client.produce(0, 3)
    waits: list[float] = []
    h.script.when(lambda: len(waits) == 300, lambda: joined_after(h.clock() + 3.0))

    def joined_after(at: float) -> None:
        h.script.when(lambda: h.clock() >= at, lambda: h.client.rebalance("assign", 0))

    def wait_ready(timeout: float) -> bool:
        waits.append(timeout)
        h.clock.advance(timeout)
        return len(waits) == 300

    h.engine.wait_ready = wait_ready  # type: ignore[method-assign]
    end = RunEnd(False, 5.0, h.clock)
    assert h.loop.run(None, 600.0, end) == 3
    assert h.client.last_commit(0) == (3, "")


def test_until_end_with_a_latest_reset_ends_at_once_when_nothing_was_committed() -> None:
    # A new group whose auto.offset.reset is latest starts at each partition's end: there is
    # nothing to process, so the run ends instead of waiting for records that never come.
    h = harness()
    h.client.rebalance("assign", 0)
    start = h.clock()
    assert h.loop.run(None, 600.0, RunEnd(True, None, h.clock, starts_at_end=True)) == 0
    assert h.clock() < start + 600.0


class CountingClient(FakeClient):
    """Counts the end offsets asked of the broker."""

    asked = 0

    def query_watermarks(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        self.asked += 1
        return super().query_watermarks(partition, timeout)


def test_ends_are_remembered_per_live_assignment_only() -> None:
    clock = FakeClock()
    client = CountingClient(clock, Script())
    client.produce(0, 5)
    end = RunEnd(True, None, clock)

    def check(partitions: dict[TopicPartition, PartitionState]) -> bool:
        clock.advance(CHECK_INTERVAL_S)
        return end.reached(client, partitions, 0, False)

    for epoch in range(10_000):  # a member rebalanced again and again over a long run
        state = PartitionState(TOPIC, 0, epoch)
        assert not check({tp(0): state})  # nothing received yet: not at its end
        assert len(end._ends) == 1
    assert client.asked == 10_000  # each assignment asked once...
    for offset in range(5):
        state.receive(offset)
    for offset in (0, 1, 2, 4):
        state.complete(offset)
    # Every record up to the end was received, but 3 is still in flight: not at the end.
    assert not check({tp(0): state})
    assert client.asked == 10_000  # ...and remembered while it stays assigned
    state.complete(3)
    assert check({tp(0): state})
    assert not check({})  # revoked: forgotten
    assert end._ends == {}


def test_every_end_is_asked_at_the_first_check_not_once_the_partitions_before_it_are_done() -> None:
    """Asked late, each end query waits behind librdkafka's fetch long-poll (about 0.5 s),
    and records produced after the assignment would be waited for too."""
    clock = FakeClock()
    client = CountingClient(clock, Script())
    client.produce(0, 5)
    client.produce(1, 3)
    end = RunEnd(True, None, clock)
    first, second = PartitionState(TOPIC, 0, 0), PartitionState(TOPIC, 1, 0)
    clock.advance(CHECK_INTERVAL_S)
    assert not end.reached(client, {tp(0): first, tp(1): second}, 0, False)
    assert client.asked == 2  # partition 1's end too, though partition 0 is not done
    client.produce(1, 2)  # produced after the assignment: not waited for
    for state, count in ((first, 5), (second, 3)):
        for offset in range(count):
            state.receive(offset)
            state.complete(offset)
    clock.advance(CHECK_INTERVAL_S)
    assert end.reached(client, {tp(0): first, tp(1): second}, 8, False)
    assert client.asked == 2


def test_until_end_waits_for_the_last_record_to_complete_not_to_arrive() -> None:
    # The run must not end (and start a shutdown drain that gives up) while a record received
    # before the end offset is still in flight: the end is judged by the commit position.
    h = harness(hold=lambda item: item.record.offset == 3, drain_timeout_s=1.0)
    h.client.produce(0, 10)
    h.client.rebalance("assign", 0)
    start = h.clock()
    h.script.when(lambda: h.clock() > start + 20.0, lambda: h.engine.release(3))
    assert h.loop.run(None, 600.0, RunEnd(True, None, h.clock)) == 10
    assert h.client.last_commit(0) == (10, "")
