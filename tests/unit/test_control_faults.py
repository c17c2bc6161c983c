"""The one error path, without a broker: every fault outside the handler ends the run with a
typed error (fake client, engine and clock; see control_fakes.py).

Each test is one kind of fault from issue 17: a fatal client error in each of its forms,
commit refusals (partial, retriable, permanent), callbacks that raise, an engine that fails,
run(max_records=N) handing out at most N records, and resources built only by run().
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from control_fakes import FakeClient, FakeClock, Script, harness, run, tp
from fake_messages import FakeKafkaError

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.control.callbacks import Callback
from pyrallel_consumer.control.client import FATAL
from pyrallel_consumer.control.kafka_log import RepeatLimiter
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.engines.registry import engine_spec
from pyrallel_consumer.errors import (
    CallbackError,
    CommitError,
    EngineError,
    HandlerExit,
    KafkaFatalError,
    ProcessingError,
)
from pyrallel_consumer.faults import LATER_LOGGED, Faults
from pyrallel_consumer.work import Outcome, Report

GROUP_AUTHORIZATION_FAILED = 30
FENCED_INSTANCE_ID = 82
NOT_COORDINATOR = 16
FENCED_TEXT = (
    "Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id"
)


# ---- fatal client errors ---------------------------------------------------------------------


@pytest.mark.parametrize("flagged", [True, False], ids=["fatal-flag", "fatal-code-only"])
def test_a_fatal_error_stops_at_once_and_commits_nothing_more(flagged: bool) -> None:
    """librdkafka's error callback may carry the _FATAL code with fatal() False: both forms
    end the run with KafkaFatalError, no later commit, the waiting records never started."""
    held = {3, 4, 5}
    h = harness(hold=lambda item: item.record.offset in held, commit_interval_s=1.0)
    client, script = h.client, h.script
    client.produce(0, 10)
    client.rebalance("assign", 0)
    fatal = FakeKafkaError(FATAL, "_FATAL", FENCED_TEXT, is_fatal=flagged)
    commits_before: list[int] = []

    def fence() -> None:
        commits_before.append(len(client.commits))
        assert client.on_error is not None
        client.on_error(fatal)

    script.when(lambda: (client.last_commit() or (0, ""))[0] == 3 and not commits_before, fence)

    with pytest.raises(KafkaFatalError, match=r"group\.instance\.id") as raised:
        run(h)
    # The cause by its own code, not librdkafka's generic _FATAL.
    assert (raised.value.code, raised.value.name) == (FENCED_INSTANCE_ID, "FENCED_INSTANCE_ID")
    assert len(client.commits) == commits_before[0], "committed after the fatal error"
    assert client.closed and h.engine.closed
    # The held records were cancelled: an engine that had not started them reports so.
    assert all(item.cancelled for item in h.engine.held.values())


def test_an_errored_message_with_the_fatal_code_is_fatal_too() -> None:
    h = harness()
    client = h.client
    client.rebalance("assign", 0)
    client.produce(0, 2)
    original = client.consume

    def consume(max_records: int, timeout: float) -> Any:
        messages = list(original(max_records, timeout))
        if messages:
            messages.append(ErroredMessage(FakeKafkaError(FATAL, "_FATAL", "Local: Fatal error")))
        return messages

    client.consume = consume  # type: ignore[method-assign]
    with pytest.raises(KafkaFatalError, match="Fatal error"):
        run(h)


class ErroredMessage:
    def __init__(self, error: FakeKafkaError) -> None:
        self._error = error

    def error(self) -> FakeKafkaError:
        return self._error


# ---- commits ---------------------------------------------------------------------------------


def test_a_partition_the_broker_refused_is_not_marked_committed_and_is_retried() -> None:
    h = harness(commit_interval_s=1.0)
    client, script = h.client, h.script
    client.refuse_commits[1] = (NOT_COORDINATOR, "NOT_COORDINATOR", True)
    client.produce(0, 4)
    client.produce(1, 4)
    client.rebalance("assign", 0, 1)
    seen: list[dict[str, Any]] = []

    def look() -> None:
        seen.append(h.loop.stats())
        del client.refuse_commits[1]

    script.when(lambda: client.last_commit(0) == (4, "") and not seen, look)
    script.when(lambda: client.last_commit(1) == (4, ""), h.loop.request_stop)

    run(h, timeout=30)
    committed = {p["partition"]: p["committed"] for p in seen[0]["partitions"].values()}
    assert committed == {0: 4, 1: None}, "stats() must show only what the broker accepted"
    assert client.last_commit(1) == (4, "")


def test_a_permanent_commit_refusal_ends_the_run_with_commit_error() -> None:
    h = harness(commit_interval_s=1.0)
    client = h.client
    client.refuse_commits[1] = (GROUP_AUTHORIZATION_FAILED, "GROUP_AUTHORIZATION_FAILED", False)
    client.produce(0, 4)
    client.produce(1, 4)
    client.rebalance("assign", 0, 1)

    with pytest.raises(CommitError, match=r"orders\[1\].*GROUP_AUTHORIZATION_FAILED") as raised:
        run(h, timeout=60)
    assert raised.value.code == GROUP_AUTHORIZATION_FAILED
    assert raised.value.partitions == [("orders", 1)]
    assert client.last_commit(0) == (4, "")  # the other partition's commits were accepted
    assert client.last_commit(1) is None


# ---- callbacks -------------------------------------------------------------------------------


def test_on_complete_raising_ends_the_run_with_callback_error() -> None:
    calls: list[Completion] = []

    def on_complete(completion: Completion) -> None:
        calls.append(completion)
        if len(calls) == 50:
            raise ValueError("bad bookkeeping")

    h = harness()
    loop = ControlLoop(
        h.config,
        h.engine,
        on_complete=on_complete,
        clock=h.clock,
        client_factory=h.client.factory,
    )
    h.client.produce(0, 200)
    h.client.rebalance("assign", 0)
    with pytest.raises(CallbackError, match="on_complete raised ValueError") as raised:
        loop.run(max_records=None, timeout=60)
    assert raised.value.callback == "on_complete"
    assert isinstance(raised.value.__cause__, ValueError)
    assert len(calls) == 50, "a callback that raised is not called again"
    # What completed is committed: the stop was clean.
    assert h.client.last_commit() is not None


def test_on_assign_raising_ends_the_run_with_callback_error() -> None:
    def on_assign(partitions: list[Any]) -> None:
        raise KeyError("no such tenant")

    h = harness()
    loop = ControlLoop(
        h.config, h.engine, on_assign=on_assign, clock=h.clock, client_factory=h.client.factory
    )
    h.client.produce(0, 5)
    h.client.rebalance("assign", 0)
    with pytest.raises(CallbackError, match="on_assign raised KeyError") as raised:
        loop.run(max_records=None, timeout=60)
    assert isinstance(raised.value.__cause__, KeyError)


# ---- engines and handlers --------------------------------------------------------------------


def test_an_engine_failing_unexpectedly_ends_the_run_with_engine_error() -> None:
    h = harness()
    h.client.produce(0, 5)
    h.client.rebalance("assign", 0)

    def broken() -> list[Report]:
        raise RuntimeError("reader thread state corrupt")

    h.script.when(lambda: h.loop.stats()["completed"] >= 0, lambda: None)
    h.engine.reports = broken  # type: ignore[method-assign]
    with pytest.raises(EngineError, match="reader thread state corrupt") as raised:
        run(h)
    assert isinstance(raised.value.__cause__, RuntimeError)
    assert h.client.closed and h.engine.closed


def test_a_stopped_report_ends_the_run_cleanly_with_handler_exit() -> None:
    h = harness(hold=lambda item: item.record.offset == 2, commit_interval_s=1.0)
    h.client.produce(0, 5)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: 2 in h.engine.held, lambda: h.engine.release(2, outcome=Outcome.STOPPED))
    with pytest.raises(HandlerExit, match=r"orders\[0\]@2"):
        run(h)
    # Drained and committed up to the record that stopped the run, not past it.
    assert h.client.last_commit() is not None
    position, _ = h.client.last_commit()  # type: ignore[misc]
    assert position == 2


def test_an_error_stop_cancels_the_records_not_started_rather_than_draining_them() -> None:
    """The run stops on the first record that failed every attempt (on_failure='stop'): the
    records not started by then are cancelled (an engine reports them so, without a handler
    call), and the drain waits only for them to be reported. Before, the drain ran every
    record in flight, each failing again: with 30 keys, about 18 s and 959 log lines."""
    h = harness(hold=lambda item: True, commit_interval_s=1.0)
    h.client.produce(0, 10)
    h.client.rebalance("assign", 0)
    h.script.when(
        lambda: len(h.engine.held) == 10, lambda: h.engine.release(3, outcome=Outcome.FAILED)
    )
    # The engine reports what it holds once it is cancelled: CANCELLED, as not started.
    h.script.when(
        lambda: bool(h.engine.held) and all(i.cancelled for i in h.engine.held.values()),
        lambda: h.engine.release(*h.engine.held),
    )
    with pytest.raises(ProcessingError, match=r"orders\[0\]@3"):
        run(h)
    assert h.engine.held == {}
    assert h.engine.handled == [(0, 3)]
    stats = h.loop.stats()
    assert (stats["cancelled"], stats["failed"], stats["in_flight"]) == (9, 1, 0)


def test_errors_after_the_first_are_logged_up_to_a_limit_then_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first error is logged when it stops the run; of those after it, LATER_LOGGED are
    logged and the rest counted in one line as the run ends."""
    h = harness(hold=lambda item: True, commit_interval_s=1.0)
    h.client.produce(0, 20)
    h.client.rebalance("assign", 0)
    # Every record fails, as with a handler bug; those the stop finds running fail too.
    h.script.when(
        lambda: len(h.engine.held) == 20,
        lambda: h.engine.release(*h.engine.held, outcome=Outcome.FAILED),
    )
    with (
        caplog.at_level(logging.WARNING, logger="pyrallel_consumer"),
        pytest.raises(ProcessingError, match=r"orders\[0\]@0"),
    ):
        run(h)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("stopping on ProcessingError: ")
    assert sum(m.startswith("also failed while stopping") for m in messages) == LATER_LOGGED
    assert f"{19 - LATER_LOGGED} more errors while stopping were not logged" in messages


def test_the_metadata_limit_is_read_at_the_first_assignment_not_before_joining() -> None:
    """Read before joining, with no broker answering, it blocked for its whole timeout (10 s)
    before run(timeout=...) or idle_timeout could end the run."""
    unassigned = harness()
    run(unassigned, timeout=5.0)
    assert unassigned.client.metadata_limit_reads == 0

    h = harness()
    h.client.produce(0, 3)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: h.loop.stats()["completed"] == 3, h.loop.request_stop)
    run(h)
    assert h.client.metadata_limit_reads == 1


# ---- limits and lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("max_records", [1, 10, 333])
def test_max_records_hands_at_most_that_many_records_to_the_engine(max_records: int) -> None:
    h = harness(max_in_flight=1000, ordering="key")
    h.client.produce(0, 2000, keys=10)
    h.client.rebalance("assign", 0)
    assert h.loop.run(max_records=max_records, timeout=600) == max_records
    assert len(h.engine.handled) == max_records


def test_a_failing_engine_start_leaks_no_client() -> None:
    h = harness()

    def start() -> None:
        raise OSError("cannot start workers")

    h.engine.start = start  # type: ignore[method-assign]
    with pytest.raises(OSError, match="cannot start workers"):
        run(h)
    assert h.client.closed


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_a_failing_client_factory_raises_its_error_and_starts_no_engine(engine: str) -> None:
    # The engine starts after the client: nothing of it runs, and closing it (which a real
    # engine cannot do before it started) would have replaced the factory's error.
    clock = FakeClock()
    client = FakeClient(clock, Script())
    h = harness(client=client)
    real = engine_spec(engine).create(no_work, h.config, None, None)
    loop = ControlLoop(h.config, real, clock=clock, client_factory=client.factory)

    def factory(*args: Any) -> FakeClient:
        raise ValueError("bad bootstrap.servers")

    loop._client_factory = factory
    with pytest.raises(ValueError, match=r"bad bootstrap\.servers"):
        loop.run(max_records=None, timeout=5.0)
    assert tp(0) not in client.assigned


def no_work(record: object) -> None:
    """A handler the process engine can pickle."""


@pytest.mark.parametrize("callback", ["on_complete", "on_assign"])
def test_a_slow_callback_is_reported_with_its_name(
    callback: str, caplog: pytest.LogCaptureFixture
) -> None:
    h = harness()

    def slow(argument: Any) -> None:
        h.clock.advance(2.5)  # the callback holds the control thread for 2.5 s

    loop = ControlLoop(
        h.config, h.engine, clock=h.clock, client_factory=h.client.factory, **{callback: slow}
    )
    h.client.produce(0, 3)
    h.client.rebalance("assign", 0)
    with caplog.at_level(logging.WARNING, logger="pyrallel_consumer"):
        assert loop.run(max_records=3, timeout=60) == 3
    slow_lines = [
        r.getMessage() for r in caplog.records if "on the control thread" in r.getMessage()
    ]
    assert slow_lines and slow_lines[0].startswith(f"{callback} took ")


def test_completions_say_when_each_record_was_handed_to_the_engine() -> None:
    """dispatched_at: received, then a wait in the backlog, then handed over (the bench's
    handler time is completed_at - dispatched_at)."""
    completions: list[Completion] = []
    h = harness(max_in_flight=2, hold=lambda item: item.record.offset == 0)
    loop = ControlLoop(
        h.config,
        h.engine,
        on_complete=completions.append,
        clock=h.clock,
        client_factory=h.client.factory,
    )
    h.client.produce(0, 4)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: len(completions) >= 1, lambda: h.clock.advance(5.0))
    h.script.when(lambda: 0 in h.engine.held and len(completions) >= 1, lambda: h.engine.release(0))
    assert loop.run(max_records=4, timeout=60) == 4
    for c in completions:
        assert c.received_at <= c.dispatched_at <= c.completed_at
    waited = [c for c in completions if c.dispatched_at > c.received_at]
    assert waited, "records behind a full in-flight window waited in the backlog"


def test_a_callback_over_a_batch_stops_at_its_first_exception_and_is_not_called_again() -> None:
    calls: list[int] = []

    def on_complete(n: int) -> None:
        calls.append(n)
        if n == 3:
            raise ValueError("bad bookkeeping")

    faults = Faults(lambda: None)
    callback = Callback("on_complete", on_complete, faults, lambda: 0.0, RepeatLimiter())
    callback.each(range(10))
    callback.each(range(10, 20))
    callback(20)
    assert calls == [0, 1, 2, 3]
    assert isinstance(faults.first, CallbackError)
    assert isinstance(faults.first.__cause__, ValueError)


@pytest.mark.parametrize(
    ("batch_size", "error", "advice"),
    [
        (10, "AttributeError: 'list' object has no attribute 'value'", "takes a list of records"),
        (10, "ValueError: boom", "set dlq_topic=... or on_failure='skip'"),
        (None, "AttributeError: 'list' object has no attribute 'value'", "set dlq_topic=..."),
    ],
)
def test_a_batch_handler_written_for_one_record_stops_naming_the_fix_not_the_policies(
    batch_size: int | None, error: str, advice: str
) -> None:
    """Skipping or dead-lettering would only lose every record of such a handler: in batch
    mode, the error it stops on says what to change in the handler instead."""
    h = harness(hold=lambda item: True, batch_size=batch_size)
    h.client.produce(0, 10)
    h.client.rebalance("assign", 0)
    h.script.when(
        lambda: len(h.engine.held) == 10,
        lambda: h.engine.release(
            *h.engine.held, outcome=Outcome.FAILED, error=f"Traceback ...\n{error}"
        ),
    )
    with pytest.raises(ProcessingError) as raised:
        run(h)
    assert advice in str(raised.value)
    assert error in str(raised.value)
    # In batch mode the attempts count every call whose list held the record: it says so.
    assert ("calls, then bisected to it alone" in str(raised.value)) == (batch_size is not None)


@pytest.mark.parametrize("batch_size", [None, 10])
def test_a_refused_output_error_counts_writes_not_batch_calls(batch_size: int | None) -> None:
    error = ProcessingError("t", 0, 5, 4, "OutputRefused: too large", batch_size=batch_size)
    assert str(error).startswith("output refused 4 time(s) on t[0]@5: OutputRefused")
