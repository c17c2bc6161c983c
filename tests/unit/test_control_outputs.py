"""Records with outputs in the control loop (control/outputs.py), with the fake client, engine
and clock and a fake output sink: a record completes only once its outputs were acknowledged,
the commit never passes one that was not, a refusal is a failed attempt (redone, then the
failure policy), a revoke fences what was waiting, and the output counters balance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from control_fakes import TOPIC, FakeClient, FakeClock, FakeEngine, Script, run

from pyrallel_consumer.config import build_config
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.control.output_sink import OnWritten, Refusal
from pyrallel_consumer.errors import ProcessingError
from pyrallel_consumer.output import Output
from pyrallel_consumer.work import Outcome, WorkItem

TOO_LARGE = 10  # Kafka's MSG_SIZE_TOO_LARGE


class OutputEngine(FakeEngine):
    """FakeEngine whose successes carry one output per record (its offset as the value)."""

    def _report(self, item: WorkItem[object], outcome: Outcome, error: str | None = None) -> None:
        super()._report(item, outcome, error)
        report = self._reports[-1]
        if report.outcome is Outcome.SUCCEEDED:
            report.outputs = [Output("out", b"%d" % item.record.offset, key=item.record.key)]


class FakeSink:
    """An OutputSink that answers only when the test says so, in write order."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[Output], OnWritten]] = []
        self.written: list[bytes | None] = []  # every output value written, in order
        self.closed = False
        self.close_timeouts: list[float] = []

    def write(self, outputs: Sequence[Output], on_written: OnWritten) -> None:
        self.writes.append((list(outputs), on_written))
        self.written.extend(o.value for o in outputs)

    def start(self) -> None:
        """Nothing to build."""

    def poll(self) -> None:
        """Answers come only from `answer`."""

    def close(self, timeout: float) -> None:
        self.closed = True
        self.close_timeouts.append(timeout)
        while self.writes:
            self.answer(refuse="_PURGE_QUEUE")

    def pending(self, offset: int) -> bool:
        return any(outputs[0].value == b"%d" % offset for outputs, _ in self.writes)

    def answer(
        self, offset: int | None = None, refuse: str | None = None, code: int = TOO_LARGE
    ) -> None:
        """Answer the first write (or the one of `offset`): acknowledged, or refused with
        Kafka error `code`."""
        index = 0
        if offset is not None:
            index = next(i for i, (o, _) in enumerate(self.writes) if o[0].value == b"%d" % offset)
        outputs, on_written = self.writes.pop(index)
        refusal = None if refuse is None else Refusal(0, outputs[0], refuse, code)
        on_written(refusal)


class Run:
    def __init__(self, records: int = 3, **options: Any) -> None:
        self.clock = FakeClock()
        self.script = Script()
        self.client = FakeClient(self.clock, self.script)
        self.client.produce(0, records)
        self.client.rebalance("assign", 0)
        options.setdefault("ordering", "unordered")
        self.config = build_config(
            {"bootstrap.servers": "fake:9092", "group.id": "g"},
            topics=[TOPIC],
            outputs=True,
            **options,
        )
        self.engine = OutputEngine(self.config, self.clock, self.script)
        self.sink = FakeSink()
        self.loop = ControlLoop(
            self.config,
            self.engine,
            clock=self.clock,
            client_factory=self.client.factory,
            output_sink=self.sink,
        )

    def committed(self) -> int | None:
        last = self.client.last_commit(0)
        return None if last is None else last[0]

    def stop_when(self, condition: Any) -> None:
        self.script.when(condition, self.loop.request_stop)


def test_a_record_completes_only_once_its_outputs_are_acknowledged() -> None:
    r = Run()
    seen: dict[str, Any] = {}

    def before_acks() -> None:
        seen["completed"] = r.loop.counters.completed
        seen["in_flight"] = r.loop.stats()["in_flight"]
        seen["committed"] = r.committed()
        r.sink.answer()  # offset 0 only

    # Wait past two commit intervals with every output unanswered.
    r.script.when(lambda: len(r.sink.writes) == 3 and r.clock.now > 1_002.5, before_acks)
    r.script.when(lambda: r.clock.now > 1_005.0, lambda: seen.update(after_one=r.committed()))
    r.script.when(lambda: True, lambda: (r.sink.answer(), r.sink.answer()))
    r.stop_when(lambda: r.loop.counters.completed == 3)
    assert run(r) == 3
    assert seen["completed"] == 0 and seen["in_flight"] == 3
    assert seen["committed"] in (None, 0)  # nothing past an unacknowledged record
    assert seen["after_one"] == 1
    assert r.committed() == 3
    stats = r.loop.stats()
    assert stats["outputs_produced"] == 0  # the fake sink counts nothing; the producer does


def test_the_commit_never_passes_an_unacknowledged_record() -> None:
    r = Run()
    r.script.when(lambda: len(r.sink.writes) == 3, lambda: (r.sink.answer(1), r.sink.answer(2)))
    r.stop_when(lambda: r.loop.counters.completed == 2 and r.clock.now > 1_003.0)
    run(r)
    last = r.client.last_commit(0)
    assert last is not None and last[0] == 0 and last[1]  # offset 0, 1 and 2 in the metadata
    # The record whose outputs wait is not completed: the next run redoes it.
    assert r.loop.counters.completed == 2


def test_a_refused_output_is_a_failed_attempt_redone_then_skipped() -> None:
    r = Run(retries=2, retry_backoff_s=0.01, on_failure="skip")
    refused = {"count": 0}

    def refuse_offset_1() -> None:
        r.sink.answer(1, refuse="MSG_SIZE_TOO_LARGE: too big")
        refused["count"] += 1

    for _ in range(3):  # the first attempt and both retries are refused
        r.script.when(lambda: r.sink.pending(1), refuse_offset_1)
    r.script.when(lambda: True, lambda: (r.sink.answer(0), r.sink.answer(2)))
    r.stop_when(lambda: r.loop.counters.completed == 3)
    assert run(r) == 3
    assert refused["count"] == 3
    assert [o for p, o in r.engine.handled if o == 1] == [1, 1, 1]  # the handler ran again
    stats = r.loop.stats()
    assert stats["skipped"] == 1 and stats["failed"] == 1 and stats["retries"] == 2
    assert r.committed() == 3


def test_a_refused_output_ends_the_run_under_stop_naming_the_record_and_output() -> None:
    r = Run(retries=1, retry_backoff_s=0.01, on_failure="stop")
    for _ in range(2):
        r.script.when(
            lambda: r.sink.pending(1), lambda: r.sink.answer(1, refuse="MSG_SIZE_TOO_LARGE: big")
        )
    r.script.when(lambda: True, lambda: (r.sink.answer(0), r.sink.answer(2)))
    with pytest.raises(ProcessingError) as raised:
        run(r)
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.attempts) == (TOPIC, 0, 1, 2)
    assert "output 1 of 1" in str(error) and "'out'" in str(error)
    assert "MSG_SIZE_TOO_LARGE" in str(error) and "Kafka error code 10" in str(error)
    assert str(error).startswith("output refused 2 time(s)")  # the handler did not fail
    assert r.committed() == 1  # never past the record whose output was refused


def test_an_output_to_a_topic_that_does_not_exist_names_the_fix() -> None:
    r = Run(retries=0, on_failure="stop")
    r.script.when(
        lambda: r.sink.pending(1),
        lambda: r.sink.answer(1, refuse="UNKNOWN_TOPIC_OR_PART: unknown", code=3),
    )
    r.script.when(lambda: True, lambda: (r.sink.answer(0), r.sink.answer(2)))
    with pytest.raises(ProcessingError) as raised:
        run(r)
    assert "create topic 'out', or fix the name the handler gives it" in str(raised.value)


def test_outputs_answered_after_a_revoke_are_fenced() -> None:
    r = Run(revoke_grace_s=0.5)
    r.script.when(lambda: len(r.sink.writes) == 3, lambda: r.client.rebalance("revoke", 0))
    # Answered once the revoke is over: its grace waited for them in vain.
    r.script.when(lambda: not r.client.assigned, lambda: [r.sink.answer() for _ in range(3)])
    r.stop_when(lambda: not r.sink.writes)
    run(r)
    stats = r.loop.stats()
    assert stats["completed"] == 0 and stats["fenced"] == 3


def test_records_waiting_for_outputs_hold_in_flight_room() -> None:
    r = Run(records=10, max_in_flight=4)
    r.script.when(lambda: r.clock.now > 1_002.0, lambda: None)
    seen: dict[str, int] = {}
    r.script.when(
        lambda: True,
        lambda: seen.update(submitted=len(r.engine.handled), writes=len(r.sink.writes)),
    )
    r.script.when(lambda: True, lambda: [r.sink.answer() for _ in range(4)])
    r.stop_when(lambda: r.loop.counters.completed >= 4)
    run(r)
    assert seen == {"submitted": 4, "writes": 4}  # max_in_flight, none completed: no more
    assert r.sink.closed


def test_records_whose_outputs_outlive_the_drain_count_abandoned_within_one_deadline() -> None:
    """Outputs never acknowledged (an unreachable output broker): the drain waits
    drain_timeout_s for them, and closing the sink and the engine gets only what is left of
    that deadline, not drain_timeout_s more each; the records count as abandoned."""
    r = Run(records=3, drain_timeout_s=5.0)
    r.stop_when(lambda: len(r.sink.writes) == 3)
    run(r)
    assert r.sink.close_timeouts == [0.0]
    assert r.engine.close_timeouts == [0.0]
    stats = r.loop.stats()
    assert (stats["completed"], stats["in_flight"], stats["abandoned"]) == (0, 0, 3)
    assert r.committed() in (None, 0)


def test_a_key_moves_on_while_its_outputs_are_written_in_order() -> None:
    # Key order, one key: the lane does not wait for the broker's acknowledgements, only for
    # the handler; the outputs are written in the order the key's records ran.
    r = Run(records=3, ordering="key", max_in_flight_per_lane=1)
    seen: dict[str, Any] = {}
    r.script.when(
        lambda: len(r.sink.writes) == 3,
        lambda: seen.update(handled=list(r.engine.handled), completed=r.loop.counters.completed),
    )
    r.script.when(lambda: len(r.sink.writes) == 3, lambda: [r.sink.answer() for _ in range(3)])
    r.stop_when(lambda: r.loop.counters.completed == 3)
    assert run(r) == 3
    assert seen == {"handled": [(0, 0), (0, 1), (0, 2)], "completed": 0}
    assert r.sink.written == [b"0", b"1", b"2"]
    assert r.committed() == 3
