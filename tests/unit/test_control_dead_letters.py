"""The failure policy inside the control loop (control/failures.py), with the fake client,
engine, clock and dead letters: counters balanced on every path of a dead letter, nothing held
once it failed, and one bounded WARNING per skipped or dead-lettered record."""

from __future__ import annotations

import logging

import pytest
from control_fakes import TOPIC, FakeDeadLetters, Harness, harness, run
from fake_messages import FakeMessage

from pyrallel_consumer.control.dead_letter import OnDelivered
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.errors import DeadLetterError
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

BIG_KEY = b"K" * 10_000
BIG_VALUE = b"V" * 10_000


class RefusingDeadLetters(FakeDeadLetters):
    """The producer refuses every dead letter at once (produce() raising: too large, queue
    full), as DeadLetterPublisher reports it."""

    def publish(self, record: Record, error: str, attempts: int, on_delivered: OnDelivered) -> None:
        raise DeadLetterError(
            record.topic, record.partition, record.offset, "dlq", "MSG_SIZE_TOO_LARGE: too big", 10
        )


def failing_at(offset: int, **options: object) -> Harness:
    """Three records on partition 0 (the one at `offset` with a 10 KB key and value), its
    handler failing once; the run stops once everything else completed."""
    h = harness(hold=lambda item: item.record.offset == offset, retries=0, **options)
    h.client.produce(0, 3)
    h.client.log[0][offset] = FakeMessage(TOPIC, 0, offset, BIG_KEY, BIG_VALUE)
    h.client.rebalance("assign", 0)
    engine = h.engine
    h.script.when(lambda: bool(engine.held), lambda: engine.release(offset, outcome=Outcome.FAILED))
    return h


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "pyrallel_consumer" and r.levelno == logging.WARNING
    ]


def assert_bounded_line(line: str) -> None:
    assert f"{TOPIC}[0]@1" in line and "after 1 attempt(s): ValueError: boom" in line
    assert "10,000 bytes" in line  # the key's length, its repr cut
    assert "VVVV" not in line and "Traceback" not in line  # never the value or the record
    assert len(line) < 400


def test_a_skipped_record_is_logged_once_with_a_bounded_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pyrallel_consumer")
    h = failing_at(1, on_failure="skip")
    h.script.when(lambda: h.loop.counters.completed == 3, h.loop.request_stop)
    assert run(h) == 3
    (line,) = [w for w in warnings(caplog) if "skipped" in w]
    assert_bounded_line(line)


def test_a_dead_lettered_record_is_logged_once_after_the_acknowledgement(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="pyrallel_consumer")
    h = failing_at(1, dlq_topic="dlq")
    dead_letters = h.dead_letters
    logged_before_ack: list[int] = []

    def ack() -> None:
        logged_before_ack.append(len(warnings(caplog)))
        dead_letters.ack()

    h.script.when(lambda: bool(dead_letters.published), ack)
    h.script.when(lambda: h.loop.counters.completed == 3, h.loop.request_stop)
    assert run(h) == 3
    assert logged_before_ack == [0]
    (line,) = [w for w in warnings(caplog) if "dead-lettered" in w]
    assert "'dlq'" in line
    assert_bounded_line(line)
    stats = h.loop.stats()
    assert (stats["failed"], stats["dead_lettered"], stats["dead_lettering"]) == (1, 1, 0)


def test_a_failed_delivery_raises_dead_letter_error_and_holds_nothing() -> None:
    h = failing_at(1, dlq_topic="dlq")
    dead_letters = h.dead_letters
    h.script.when(lambda: bool(dead_letters.published), lambda: dead_letters.ack("broker down"))
    with pytest.raises(DeadLetterError) as raised:
        run(h)
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.dlq_topic) == (TOPIC, 0, 1, "dlq")
    assert error.cause == "broker down"
    last = h.client.last_commit()
    assert last is not None and last[0] <= 1
    stats = h.loop.stats()
    assert (stats["failed"], stats["dead_lettered"], stats["dead_lettering"]) == (1, 0, 0)
    assert stats["in_flight"] == 0


def test_a_dead_letter_refused_at_once_stops_the_run_without_waiting_for_it() -> None:
    """Issue 17, fault 4, with the producer faked: produce() refused the dead letter. The
    revoke grace and the shutdown drain must not wait for an acknowledgement that will never
    come (before, dead_lettering stayed 1 and both waited their whole timeout)."""
    h = failing_at(1, dlq_topic="dlq", drain_timeout_s=30.0, revoke_grace_s=10.0)
    loop = ControlLoop(
        h.config,
        h.engine,
        clock=h.clock,
        client_factory=h.client.factory,
        dead_letters=RefusingDeadLetters(),
    )
    started = h.clock()
    with pytest.raises(DeadLetterError, match=r"orders\[0\]@1.*MSG_SIZE_TOO_LARGE"):
        loop.run(max_records=None, timeout=600.0)
    stats = loop.stats()
    assert (stats["failed"], stats["dead_lettered"], stats["dead_lettering"]) == (1, 0, 0)
    assert stats["in_flight"] == 0
    last = h.client.last_commit()
    assert last is not None and last[0] <= 1
    assert h.clock() - started < 10.0  # fake seconds: neither the grace nor the drain ran out


def test_a_dead_letter_acknowledged_after_its_partition_was_revoked_counts_as_fenced() -> None:
    h = failing_at(1, dlq_topic="dlq", revoke_grace_s=1.0)
    dead_letters = h.dead_letters

    def revoked() -> bool:
        return bool(dead_letters.published) and not h.client.assigned

    h.script.when(lambda: bool(dead_letters.published), lambda: h.client.rebalance("revoke", 0))
    h.script.when(revoked, dead_letters.ack)
    h.script.when(lambda: not dead_letters.published, h.loop.request_stop)
    run(h)
    stats = h.loop.stats()
    assert (stats["failed"], stats["dead_lettered"], stats["fenced"]) == (1, 0, 1)
    assert stats["dead_lettering"] == 0
