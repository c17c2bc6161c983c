"""The control plane without a broker: a fake client, a fake engine and a fake clock.

Each test drives the real ControlLoop through one scenario and checks what Kafka would see
(the commits, pauses) and what the user would see (counters, completions, errors).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from control_fakes import FakeClient, FakeClock, Harness, Script, harness, run, stopping, tp

from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.errors import DeadLetterError, ProcessingError
from pyrallel_consumer.topic_partition import TopicPartition
from pyrallel_consumer.work import Outcome


def completed_above(commit: tuple[int, str] | None) -> set[int]:
    assert commit is not None
    position, metadata = commit
    return offset_metadata.decode(position, metadata) if metadata else set()


def positions(h: Harness, partition: int = 0) -> list[int]:
    return [o.offset for batch in h.client.commits for o in batch if o.partition == partition]


# ---- rebalances ------------------------------------------------------------------------------


def test_assign_revoke_with_work_in_flight_then_reassign() -> None:
    """Revoke: records not started are cancelled, started ones get the grace, the final
    position is committed, a report after the revoke is fenced; the reassignment starts at the
    committed position and redoes exactly the records that were not completed."""
    first_assignment = [True]
    h = harness(
        hold=lambda item: first_assignment[0] and item.record.offset >= 5, revoke_grace_s=2.0
    )
    engine, client, script = h.engine, h.client, h.script
    client.produce(0, 10)
    client.rebalance("assign", 0)
    script.when(lambda: len(engine.held) == 5, lambda: client.rebalance("revoke", 0))
    # Inside the revoke callback: the grace is running and 5..9 were cancelled; 5 had started.
    script.when(lambda: any(i.cancelled for i in engine.held.values()), lambda: finish(5))

    def finish(offset: int) -> None:
        engine.finish_late(offset)

    revoke_commit: list[tuple[int, str] | None] = []

    def after_revoke() -> None:
        revoke_commit.append(client.last_commit())
        first_assignment[0] = False
        engine.finish_late(6)  # started before the revoke, reported after it: fenced
        engine.release(7, 8, 9)  # never started: cancelled
        client.rebalance("assign", 0)

    script.when(lambda: client.assigned == set(), after_revoke)
    epochs: list[int] = []

    def stop() -> None:
        epochs.append(h.loop.stats()["partitions"][TopicPartition("orders", 0)]["epoch"])
        h.loop.request_stop()

    script.when(lambda: client.last_commit() == (10, ""), stop)

    assert run(h) == 10  # 0..5 under the first assignment, 6..9 under the second
    assert revoke_commit == [(6, "")]  # 5 finished within the grace
    stats = h.loop.stats()
    assert (stats["fenced"], stats["cancelled"]) == (1, 3)
    assert h.assignments == [[tp(0)], [tp(0)]]
    assert [offset for _, offset in engine.handled].count(6) == 2  # redone by the new owner
    assert epochs == [2]  # a new partition state for the new assignment
    assert h.client.closed and engine.closed


def test_rebalance_log_lines_name_partitions_in_one_form(caplog: pytest.LogCaptureFixture) -> None:
    """Assigned, revoked and lost partitions are logged as topic[partition], as stats() and the
    metrics name them (the assignment once showed TopicPartition reprs, the revocation tuples);
    an assignment of nothing is not logged."""
    h = harness()
    client, script = h.client, h.script
    client.produce(0, 2)
    client.rebalance("assign", 0, 1)
    # A cooperative rebalance that adds nothing assigns no partition: no line (it was an empty
    # "assigned ").
    script.when(lambda: client.assigned == {tp(0), tp(1)}, lambda: client.rebalance("assign"))
    script.when(lambda: client.assigned == {tp(0), tp(1)}, lambda: client.rebalance("revoke", 1))
    script.when(lambda: client.assigned == {tp(0)}, lambda: client.rebalance("lost", 0))
    script.when(lambda: client.assigned == set(), h.loop.request_stop)
    with caplog.at_level(logging.INFO, logger="pyrallel_consumer"):
        run(h)
    messages = [record.getMessage() for record in caplog.records]
    named = [m for m in messages if any(word in m for word in ("assigned", "revoked", "lost"))]
    assert named == [
        "assigned orders[0], orders[1]",
        "revoked orders[1]",
        "partitions lost: orders[0]",
    ]


def test_grace_runs_out_on_the_injected_clock_and_commits_only_what_completed() -> None:
    h = harness(hold=lambda item: item.record.offset >= 3, revoke_grace_s=4.0)
    client, script = h.client, h.script
    client.produce(0, 6)
    client.rebalance("assign", 0)
    revoked_at: list[float] = []

    def revoke() -> None:
        revoked_at.append(h.clock())
        client.rebalance("revoke", 0)

    script.when(lambda: len(h.engine.held) == 3, revoke)

    def stop() -> None:
        revoked_at.append(h.clock())
        h.loop.request_stop()

    script.when(lambda: client.assigned == set(), stop)

    run(h)
    assert client.last_commit() == (3, "")
    # The grace waited its 4 fake seconds for the three started records, and no longer.
    assert 4.0 <= revoked_at[1] - revoked_at[0] < 4.5


def test_lost_partitions_are_not_committed_and_their_reports_are_fenced() -> None:
    h = harness(hold=lambda item: item.record.offset >= 2)
    client, script = h.client, h.script
    client.produce(0, 5)
    client.rebalance("assign", 0)
    commits_before_lost: list[int] = []

    def lose() -> None:
        commits_before_lost.append(len(client.commits))
        client.rebalance("lost", 0)

    script.when(lambda: len(h.engine.held) == 3, lose)

    def late() -> None:
        h.engine.finish_late(2, 3, 4)
        h.loop.request_stop()

    script.when(lambda: client.assigned == set(), late)

    run(h)
    assert len(client.commits) == commits_before_lost[0]  # no commit for a lost partition
    assert h.loop.stats()["fenced"] == 3


# ---- commits -----------------------------------------------------------------------------------


def test_commit_point_stops_at_the_lowest_incomplete_record_with_the_rest_in_metadata() -> None:
    held = {3, 6}
    h = harness(hold=lambda item: item.record.offset in held, commit_interval_s=1.0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    seen: list[tuple[int, str] | None] = []

    def observe_then_release(offset: int) -> None:
        seen.append(client.last_commit())
        engine.release(offset)

    script.when(lambda: client.last_commit() is not None, lambda: observe_then_release(3))
    script.when(lambda: client.last_commit()[0] == 6, lambda: observe_then_release(6))
    script.when(lambda: client.last_commit() == (10, ""), h.loop.request_stop)

    assert run(h) == 10
    assert [s[0] for s in seen if s] == [3, 6]
    assert completed_above(seen[0]) == {4, 5, 7, 8, 9}
    assert completed_above(seen[1]) == {7, 8, 9}
    assert positions(h) == sorted(positions(h))  # never moves back


def test_assignment_reads_the_metadata_back_and_skips_already_completed_records() -> None:
    clock, script = FakeClock(), Script()
    client = FakeClient(clock, script)
    client.produce(0, 10)
    client.committed_offsets[tp(0)] = (3, offset_metadata.encode(3, {4, 5, 7, 8, 9})[0])
    client.rebalance("assign", 0)
    h = harness(client=client)
    script.when(lambda: client.last_commit() == (10, ""), h.loop.request_stop)

    assert run(h) == 2
    assert [offset for _, offset in h.engine.handled] == [3, 6]
    assert h.loop.stats()["already_completed"] == 5


def test_a_refused_commit_is_retried_at_the_next_interval() -> None:
    h = harness(commit_interval_s=1.0)
    client, script = h.client, h.script
    client.fail_commits = True
    client.produce(0, 4)
    client.rebalance("assign", 0)
    start = h.clock()
    script.when(lambda: h.clock() >= start + 3, lambda: setattr(client, "fail_commits", False))
    # When the commit landed: a retry at the next interval lands within one interval of the
    # broker coming back; without it, only the shutdown's commit would (at the run's timeout).
    landed: list[float] = []
    script.when(
        lambda: client.last_commit() == (4, ""),
        lambda: (landed.append(h.clock()), h.loop.request_stop()),
    )

    run(h)
    assert client.last_commit() == (4, "")
    assert landed and landed[0] <= start + 3 + 1.0 + 0.5, landed


# ---- backpressure --------------------------------------------------------------------------------


def snapshots_while_holding(h: Harness, *after_s: float) -> tuple[list[Any], list[Any]]:
    """Run `h` with partition 0 assigned and every record held, taking stats() `after_s`
    seconds from the start; then finish the held records and stop. Returns the snapshots and
    the pause calls made before the stop."""
    h.client.rebalance("assign", 0)
    start = h.clock()
    seen: list[Any] = []
    for seconds in after_s:
        h.script.when(
            lambda seconds=seconds: h.clock() >= start + seconds,
            lambda: seen.append(h.loop.stats()),
        )
    paused: list[Any] = []

    def stop() -> None:
        paused.extend(h.client.pause_calls)
        h.engine.finish_late(*sorted(h.engine.held))
        h.loop.request_stop()

    h.script.when(lambda: len(seen) == len(after_s), stop)
    run(h)
    return seen, paused


def test_the_loop_consumes_no_more_while_a_window_of_records_waits_ready_in_the_backlog() -> None:
    """Records the engine could take at once are enough: the rest wait in the client (where
    the next consume finds them) rather than in the backlog, for up to HOLD_S; then the
    backlog fills as before. Not a capacity hold: nothing is paused."""
    h = harness(hold=lambda item: True, max_in_flight=4, backlog_size=100, poll_batch_size=2)
    h.client.produce(0, 60)
    (holding, after), paused = snapshots_while_holding(h, 0.5, 1.5)
    assert holding["in_flight"] == 4
    assert holding["backlog"] == 4  # a window's worth: max_in_flight
    assert holding["received"] == 8
    assert after["received"] == 60  # held for HOLD_S at most: then it filled the backlog
    assert paused == []


def test_records_held_back_by_their_lane_cap_do_not_count_as_ready() -> None:
    """A hot key's records beyond its lane cap cannot be taken: the loop keeps consuming, so
    the window can fill with other keys' records (batch mode, where ready records count)."""
    h = harness(
        hold=lambda item: True, ordering="key", max_in_flight=4, batch_size=2, poll_batch_size=2
    )
    h.client.produce(0, 60)  # one key: a lane cap of 2 (window.default_lane_cap)
    (seen,), _ = snapshots_while_holding(h, 0.5)
    assert (seen["in_flight"], seen["received"]) == (2, 60)


def test_with_key_order_one_record_at_a_time_the_loop_keeps_finding_keys() -> None:
    """What keeps the engine busy there is how many keys have records, and Kafka returns
    records a partition at a time: the loop fills the backlog (measured, sleep 5 ms, 100 keys:
    0.50 of the bound when it stopped at a window's worth of records, 0.89 without)."""
    h = harness(hold=lambda item: True, ordering="key", max_in_flight=4, poll_batch_size=2)
    h.client.produce(0, 60, keys=60)
    (seen,), _ = snapshots_while_holding(h, 0.5)
    assert (seen["in_flight"], seen["received"]) == (4, 60)


def test_partitions_pause_when_in_flight_and_backlog_are_full_and_resume_after() -> None:
    holding = [True]
    h = harness(hold=lambda item: holding[0], max_in_flight=2, backlog_size=3, poll_batch_size=2)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 20)
    client.rebalance("assign", 0)
    while_paused: list[dict[str, object]] = []

    def release_all() -> None:
        while_paused.append(h.loop.stats())
        holding[0] = False
        engine.release(*sorted(engine.held))

    script.when(lambda: tp(0) in client.paused, release_all)
    script.when(lambda: client.last_commit() == (20, ""), h.loop.request_stop)

    assert run(h) == 20
    stats = while_paused[0]
    assert stats["paused_partitions"] == [TopicPartition("orders", 0)]
    assert stats["in_flight"] == 2
    assert stats["received"] <= 2 + 3 + 2  # capacity + at most one poll batch past it
    assert engine.max_in_flight_seen <= 2
    kinds = [kind for kind, _ in client.pause_calls]
    assert kinds[:2] == ["pause", "resume"]


# ---- shutdown --------------------------------------------------------------------------------


def test_a_stop_cancels_the_records_not_started_and_lets_the_running_ones_finish() -> None:
    """stop(), SIGTERM or a timeout: the records not started are cancelled (never run, so the
    next owner runs them once) and the drain waits only for the running ones. Before, it ran
    every record queued in its lane first: with 20 keys and a 0.5 s handler, SIGTERM took
    15.9 s (up to max_in_flight_per_lane handler calls per key)."""
    h = harness(hold=lambda item: True, drain_timeout_s=30.0, commit_interval_s=1.0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    stop, stopped_at = stopping(h)

    def report() -> None:  # the engine was running offset 0 and had started no other
        engine.finish_late(0)
        engine.release(*sorted(engine.held))

    script.when(lambda: len(engine.held) == 10, stop)
    script.when(lambda: all(item.cancelled for item in engine.held.values()), report)

    assert run(h) == 1
    stats = h.loop.stats()
    assert (stats["completed"], stats["cancelled"], stats["in_flight"]) == (1, 9, 0)
    assert client.last_commit() == (1, "")
    assert engine.handled == [(0, 0)]
    assert h.clock() - stopped_at[0] < 30.0  # no drain timeout waited out


def test_every_record_received_is_counted_once_when_a_revoke_and_a_stop_drop_the_backlog() -> None:
    """Records queued in the backlog when their partition was revoked, or when the run stopped,
    were dropped without a count (the trial: 11,177 of 30,000 received counted nowhere): they
    are cancelled, like the records not started in the engine, so the counters add up."""
    h = harness(hold=lambda item: True, max_in_flight=4, max_in_flight_per_lane=4)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 20)
    client.produce(1, 20)
    client.rebalance("assign", 0, 1)
    stop, _ = stopping(h)
    received = lambda: h.loop.counters.received  # noqa: E731
    script.when(
        lambda: received() == 40 and len(engine.held) == 4, lambda: client.rebalance("revoke", 1)
    )
    script.when(lambda: client.assigned == {tp(0)}, stop)
    script.when(
        lambda: all(item.cancelled for item in engine.held.values()),
        lambda: engine.release(*sorted(engine.held)),
    )

    run(h)
    counts = h.loop.stats()
    assert counts["received"] == 40
    assert counts["cancelled"] >= 36  # the backlog's, and the engine's records not started
    assert counts["received"] == sum(
        counts[name]
        for name in ("completed", "already_completed", "cancelled", "abandoned", "fenced")
    )


def test_shutdown_waits_for_in_flight_work_within_the_drain_timeout_then_commits() -> None:
    h = harness(hold=lambda item: item.record.offset in (2, 3), drain_timeout_s=5.0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    stop, stopped_at = stopping(h)

    script.when(lambda: h.loop.counters.completed == 8, stop)
    # 2 and 3 were running when the stop came: 2 finishes during the drain, 3 never does.
    script.when(lambda: h.clock() >= stopped_at[0] + 1, lambda: engine.finish_late(2))

    assert run(h) == 9  # 3 never finished
    # Given up once the run ended: abandoned, no longer in flight.
    assert (h.loop.stats()["in_flight"], h.loop.stats()["abandoned"]) == (0, 1)
    assert client.last_commit() is not None
    assert client.last_commit()[0] == 3
    assert completed_above(client.last_commit()) == {4, 5, 6, 7, 8, 9}
    assert h.clock() - stopped_at[0] >= 5.0  # waited the whole drain timeout for 3
    assert tp(0) in client.pause_calls[0][1]  # stopped fetching before draining
    assert client.closed and engine.closed


def test_a_second_stop_ends_the_drain_at_once_and_both_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A user who pressed Ctrl-C saw nothing for drain_timeout_s (30 s by default), and a
    second Ctrl-C changed nothing: now the drain says what it waits for, and a second stop
    (the user's stop(), as a signal calls it) stops waiting; the record still running is not
    committed."""
    h = harness(hold=lambda item: item.record.offset == 3, drain_timeout_s=300.0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 10)
    client.rebalance("assign", 0)
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(h.clock())
        h.loop.request_stop(repeat_hurries=True)

    script.when(lambda: h.loop.counters.completed == 9, stop)
    script.when(lambda: h.clock() >= stopped_at[0] + 2, stop)  # 2 s into the drain
    with caplog.at_level(logging.INFO, logger="pyrallel_consumer"):
        assert run(h) == 9
    assert h.clock() - stopped_at[0] < 10.0  # not the 300 s drain
    assert client.last_commit() is not None and client.last_commit()[0] == 3
    assert completed_above(client.last_commit()) == {4, 5, 6, 7, 8, 9}
    assert engine.close_timeouts == [0.0]  # nor does closing the engine wait for offset 3
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "stopping: waiting up to drain_timeout_s=300.0 for 1 records in flight; stop again "
        "(a second Ctrl-C) to stop waiting (they are then not committed)"
    ) in messages
    assert (
        "shutdown: 1 records still in flight after a second stop request are not committed; "
        "whoever consumes their partitions next redoes them"
    ) in messages


# ---- failures and dead letters ---------------------------------------------------------------


def test_a_dead_lettered_record_is_committed_past_only_after_the_acknowledgement() -> None:
    h = harness(hold=lambda item: item.record.offset == 2, dlq_topic="dlq", retries=0)
    client, script, engine, dead_letters = h.client, h.script, h.engine, h.dead_letters
    client.produce(0, 5)
    client.rebalance("assign", 0)
    before_ack: list[object] = []

    def ack() -> None:
        before_ack.extend([client.last_commit(), h.loop.stats()["dead_lettering"]])
        dead_letters.ack()

    script.when(
        lambda: h.loop.counters.completed == 4, lambda: engine.release(2, outcome=Outcome.FAILED)
    )
    script.when(lambda: bool(dead_letters.published) and client.last_commit() is not None, ack)
    script.when(lambda: client.last_commit() == (5, ""), h.loop.request_stop)

    assert run(h) == 5
    commit, dead_lettering = before_ack
    assert commit is not None and commit[0] == 2  # not past the unacknowledged record
    assert dead_lettering == 1
    stats = h.loop.stats()
    assert (stats["failed"], stats["dead_lettered"], stats["skipped"]) == (1, 1, 0)


def test_a_dead_letter_that_fails_stops_the_consumer_without_committing_past_it() -> None:
    h = harness(hold=lambda item: item.record.offset == 1, dlq_topic="dlq", retries=0)
    client, script, engine, dead_letters = h.client, h.script, h.engine, h.dead_letters
    client.produce(0, 3)
    client.rebalance("assign", 0)
    script.when(lambda: len(engine.held) == 1, lambda: engine.release(1, outcome=Outcome.FAILED))
    script.when(lambda: bool(dead_letters.published), lambda: dead_letters.ack("broker down"))

    with pytest.raises(DeadLetterError, match="broker down"):
        run(h)
    assert client.last_commit() is not None
    assert client.last_commit()[0] == 1


@pytest.mark.parametrize("policy", ["skip", "stop"])
def test_failure_policy_skip_completes_and_stop_raises(policy: str) -> None:
    h = harness(hold=lambda item: item.record.offset == 1, on_failure=policy, retries=0)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 3)
    client.rebalance("assign", 0)
    script.when(lambda: len(engine.held) == 1, lambda: engine.release(1, outcome=Outcome.FAILED))
    script.when(lambda: client.last_commit() == (3, ""), h.loop.request_stop)

    if policy == "skip":
        assert run(h) == 3
        assert h.loop.stats()["skipped"] == 1
    else:
        with pytest.raises(ProcessingError, match=r"orders\[0\]@1"):
            run(h)
        assert client.last_commit() is not None
        assert client.last_commit()[0] == 1
