"""Commit first, then wait; commits that reach the consumer's position; the stats() snapshot.

Broker-free: the real ControlLoop over the fakes in control_fakes.py (issue 10, faults 5, 7, 8).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from control_fakes import harness, run, stopping, tp

from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.control import offset_metadata, session
from pyrallel_consumer.topic_partition import TopicPartition

SESSION = {"session.timeout.ms": 6000}


def completed_above(commit: tuple[int, str] | None) -> set[int]:
    assert commit is not None
    position, metadata = commit
    return offset_metadata.decode(position, metadata) if metadata else set()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ---- commit first, then wait ---------------------------------------------------------------


def test_revoke_commits_what_completed_before_a_grace_capped_below_the_session() -> None:
    """Offset 0 is stuck, 1-9 completed, no periodic commit yet: the revoke commits 1-9 (in
    the metadata) before its grace, and the grace ends at half the session, not after
    revoke_grace_s."""
    h = harness(
        hold=lambda item: item.record.offset == 0,
        kafka_config=SESSION,
        revoke_grace_s=10.0,
        commit_interval_s=100.0,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    times: list[float] = []
    in_grace: list[tuple[int, str] | None] = []

    def revoke() -> None:
        times.append(h.clock())
        client.rebalance("revoke", 0)

    def stop() -> None:
        times.append(h.clock())
        engine.release(0)  # cancelled by the revoke, never started here
        h.loop.request_stop()

    script.when(lambda: h.loop.counters.completed == 9, revoke)
    script.when(lambda: engine.held[0].cancelled, lambda: in_grace.append(client.last_commit()))
    script.when(lambda: client.assigned == set(), stop)

    assert run(h) == 9
    assert in_grace[0] is not None and in_grace[0][0] == 0
    assert completed_above(in_grace[0]) == set(range(1, 10))
    assert session.wait_bound_s(h.config.kafka_config) == 3.0
    assert 3.0 <= times[1] - times[0] < 3.5  # fake seconds: capped at 3, not 10


def test_shutdown_commits_before_the_drain_and_says_what_the_group_keeps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The issue's input: offset 0 outlives the drain. Completed records are committed before
    the drain; when the later commits are refused (offset 5 completed during the drain), the
    log says what the group keeps and what is redone, never that a later interval retries;
    close() does not wait a second grace."""
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    h = harness(
        hold=lambda item: item.record.offset in (0, 5),
        kafka_config=SESSION,
        drain_timeout_s=1.0,
        revoke_grace_s=10.0,
        commit_interval_s=100.0,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    stop, stopped_at = stopping(h)

    def refuse_commits_then_finish_5() -> None:
        client.fail_commits = True
        engine.finish_late(5)  # running when the stop came

    script.when(lambda: h.loop.counters.completed == 8, stop)
    script.when(lambda: bool(client.commits), refuse_commits_then_finish_5)

    assert run(h) == 9
    assert len(client.commits) == 1  # the one before the drain; the later ones were refused
    first = client.commits[0][0]
    assert first.offset == 0
    assert completed_above((first.offset, first.metadata)) == {1, 2, 3, 4, 6, 7, 8, 9}
    assert h.clock() - stopped_at[0] < 1.5  # the drain's 1 s, and no revoke grace in close
    said = warnings(caplog)
    assert any("1 records still in flight" in m and "redoes them" in m for m in said), said
    assert any("the group keeps orders[0] at 0 (+8 completed above it)" in m for m in said), said
    assert not [m for m in said if "interval" in m], said


def test_the_shutdown_drain_keeps_committing_on_the_interval() -> None:
    h = harness(
        hold=lambda item: item.record.offset in (0, 5),
        drain_timeout_s=10.0,
        commit_interval_s=1.0,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    stop, stopped_at = stopping(h)

    script.when(lambda: h.loop.counters.completed == 8, stop)
    # Both were running when the stop came: they finish during the drain.
    script.when(lambda: h.clock() >= stopped_at[0] + 0.5, lambda: engine.finish_late(0))
    # Offset 5 is still running: the drain goes on, and commits 0's completion on its interval.
    script.when(
        lambda: client.last_commit() == (5, offset_metadata.encode(5, {6, 7, 8, 9})[0]),
        lambda: engine.finish_late(5),
    )

    assert run(h) == 10
    assert client.last_commit() == (10, "")


# ---- commits reach the consumer's position -----------------------------------------------------


def test_an_idle_partition_commits_past_records_never_delivered() -> None:
    """read_committed: 3 records, then a commit marker, 3 aborted records and an abort marker
    the consumer never delivers. Once the 3 completed, the commit reaches 8 and lag is 0."""
    h = harness(commit_interval_s=1.0)
    client, script = h.client, h.script
    client.produce(0, 3)
    client.markers[0] = 5
    client.rebalance("assign", 0)
    script.when(lambda: client.last_commit() == (8, ""), h.loop.request_stop)

    assert run(h) == 3
    stats = h.loop.stats()["partitions"][TopicPartition("orders", 0)]
    assert (stats["position"], stats["committed"], stats["lag"]) == (8, 8, 0)


def test_the_position_is_never_committed_past_an_incomplete_record() -> None:
    h = harness(hold=lambda item: item.record.offset == 1, commit_interval_s=1.0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 3)
    client.markers[0] = 5
    client.rebalance("assign", 0)
    while_held: list[tuple[int, str] | None] = []

    def release() -> None:
        while_held.append(client.last_commit())
        engine.release(1)

    script.when(lambda: client.last_commit() is not None, release)
    script.when(lambda: client.last_commit() == (8, ""), h.loop.request_stop)

    assert run(h) == 3
    assert while_held[0] is not None
    assert while_held[0][0] == 1 and completed_above(while_held[0]) == {2}


# ---- the stats() snapshot ------------------------------------------------------------------


def test_stats_before_during_from_another_thread_and_after_the_run() -> None:
    h = harness(commit_interval_s=1.0)
    client, script = h.client, h.script
    before = h.loop.stats()
    assert (before["partitions"], before["in_flight"], before["completed"]) == ({}, 0, 0)
    assert before["engine_info"] == {"engine": "fake"}
    client.produce(0, 10)
    client.rebalance("assign", 0)
    seen: dict[str, Any] = {}

    def from_another_thread() -> None:
        def read() -> None:
            first = h.loop.stats()
            first["partitions"].clear()  # a caller's copy: changing it changes nothing else
            seen["first"], seen["second"] = first, h.loop.stats()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        h.loop.request_stop()

    script.when(lambda: client.last_commit() == (10, ""), from_another_thread)

    assert run(h) == 10
    second = seen["second"]
    assert (
        second["partitions"][TopicPartition("orders", 0)]["committed"] == 10
    )  # published with the commit
    assert second["completed"] <= second["received"] == 10

    after = h.loop.stats()  # the final state, kept after run() returned
    assert after["completed"] == 10 and after["in_flight"] == 0
    assert after["paused_partitions"] == []
    partition = after["partitions"][TopicPartition("orders", 0)]
    assert (partition["topic"], partition["partition"]) == tp(0)
    assert (partition["committed"], partition["lag"], partition["assigned"]) == (10, 0, False)
    # The shutdown paused it before it was revoked; no longer assigned, it is paused nowhere,
    # as paused_partitions says.
    assert partition["paused"] is False


def test_the_wait_bound_comes_from_the_session_and_poll_timeouts() -> None:
    assert session.wait_bound_s({}) == 22.5  # librdkafka's defaults: 45 s session
    assert session.wait_bound_s({"session.timeout.ms": "6000"}) == 3.0
    assert session.wait_bound_s({"max.poll.interval.ms": 4000}) == 2.0
    with pytest.raises(ValueError, match=r"session\.timeout\.ms.*whole number"):
        harness(kafka_config={"session.timeout.ms": "6 s"})


def test_engine_counters_are_published_with_the_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batch mode's `batches` (Engine.counters) is read by the control thread and published:
    a copy from another thread, the final counts after run()."""
    h = harness(commit_interval_s=1.0)
    client, script = h.client, h.script
    monkeypatch.setattr(h.engine, "counters", lambda: {"batches": {"calls": len(h.engine.handled)}})
    client.produce(0, 10)
    client.rebalance("assign", 0)
    seen: dict[str, Any] = {}

    def from_another_thread() -> None:
        def read() -> None:
            first = h.loop.stats()
            first["batches"]["calls"] = -1  # the caller's copy only
            seen["second"] = h.loop.stats()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
        h.loop.request_stop()

    script.when(lambda: client.last_commit() == (10, ""), from_another_thread)
    assert run(h) == 10
    assert seen["second"]["batches"] == {"calls": 10}
    assert h.loop.stats()["batches"] == {"calls": 10}


def test_batch_counts_are_zeros_before_run() -> None:
    consumer = ParallelConsumer(
        {"bootstrap.servers": "localhost:9092", "group.id": "g"},
        topics=["orders"],
        handler=lambda records: None,
        batch_size=10,
    )
    zeros = {"batches": 0, "records": 0, "calls": 0, "splits": 0, "split_calls": 0}
    assert consumer.stats()["batches"] == zeros
