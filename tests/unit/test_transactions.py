"""Exactly once in the control loop (control/transactions.py, Rebalancer.rewind), with the fake
client, engine and clock, the fake output sink of test_control_outputs and a fake of the
library's own transactional producer: offsets go into the transaction, never through the
consumer's commit; every write of a transaction is answered before its offsets are chosen; an
aborted transaction rewinds every partition and redoes its records, each output landing in a
committed transaction once; work in flight across the abort is fenced; a fenced producer ends
the run with KafkaFatalError; a record refused for good is not written again."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition
from control_fakes import TOPIC, FakeClient, FakeClock, Script, run
from test_control_outputs import FakeSink, OutputEngine

from pyrallel_consumer.config import build_config
from pyrallel_consumer.control import transactions
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.control.output_sink import TRANSACTION_ABORTING, OnWritten, Refusal
from pyrallel_consumer.control.transactions import Aborted
from pyrallel_consumer.engines.registry import engine_spec
from pyrallel_consumer.errors import KafkaError as KafkaError_
from pyrallel_consumer.errors import KafkaFatalError
from pyrallel_consumer.output import Output
from pyrallel_consumer.work import WorkItem


class FakeTransactions:
    """What the loop uses of transactions.TransactionalProducer. Outputs written since the
    last commit or abort belong to the open transaction; `committed_outputs` are those of the
    committed ones. `fail` holds exceptions the next commits raise (Aborted: aborted)."""

    def __init__(self) -> None:
        self.open = False
        self.config: dict[str, Any] = {}
        self.unacknowledged = 0
        self.sink: TransactionSink | None = None
        self.pending: list[bytes | None] = []
        self.committed_outputs: list[bytes | None] = []
        self.commits: list[list[tuple[int, int, str]]] = []
        self.fail: list[Exception] = []
        self.flushed_before_commit: list[int] = []  # sink writes left unanswered at commit
        self.aborts = 0  # abort() calls (an abort raised from commit is not one)
        self.left = 0  # writes `flush` leaves unanswered

    def start(self) -> None:
        """Nothing to register."""

    def flush(self, timeout: float) -> int:
        assert self.sink is not None
        while len(self.sink.writes) > self.left:
            self.sink.answer()
        return len(self.sink.writes)

    def commit(self, offsets: list[KafkaTopicPartition], group_metadata: object) -> None:
        assert self.sink is not None
        self.flushed_before_commit.append(len(self.sink.writes))
        if self.fail:
            error = self.fail.pop(0)
            if isinstance(error, Aborted):
                self.open = False
                self.pending.clear()
            raise error
        self.commits.append([(o.partition, o.offset, o.metadata) for o in offsets])
        self.committed_outputs.extend(self.pending)
        self.pending.clear()
        self.open = False

    def abort(self) -> None:
        self.aborts += 1
        self.pending.clear()
        self.open = False

    def close(self, timeout: float) -> int:
        self.pending.clear()  # aborted
        return 0


class TransactionSink(FakeSink):
    """FakeSink writing into the fake transaction."""

    def __init__(self, transactions: FakeTransactions) -> None:
        super().__init__()
        self.transactions = transactions
        transactions.sink = self

    def write(self, outputs: Sequence[Output], on_written: OnWritten) -> None:
        super().write(outputs, on_written)
        self.transactions.open = True
        self.transactions.pending.extend(o.value for o in outputs)


class Run:
    def __init__(
        self,
        records: int = 6,
        hold: Any = lambda item: False,
        on_revoke: Callable[[list[Any]], None] | None = None,
        **options: Any,
    ) -> None:
        self.clock = FakeClock()
        self.script = Script()
        self.client = FakeClient(self.clock, self.script)
        self.client.produce(0, records)
        self.client.rebalance("assign", 0)
        options.setdefault("ordering", "unordered")
        options.setdefault("commit_interval_s", 0.5)
        self.config = build_config(
            {"bootstrap.servers": "fake:9092", "group.id": "g"},
            topics=[TOPIC],
            outputs=True,
            transactional_id="tx-0",
            **options,
        )
        self.engine = OutputEngine(self.config, self.clock, self.script, hold)
        self.transactions = FakeTransactions()
        self.sink = TransactionSink(self.transactions)
        self.loop = ControlLoop(
            self.config,
            self.engine,
            clock=self.clock,
            client_factory=self.client.factory,
            output_sink=self.sink,
            transactions=self.transactions,  # type: ignore[arg-type]
            on_revoke=on_revoke,
        )

    def committed_values(self) -> list[int]:
        return sorted(int(v or b"") for v in self.transactions.committed_outputs)

    def last_offset(self) -> int | None:
        commits = self.transactions.commits
        return commits[-1][-1][1] if commits else None


def test_offsets_go_into_the_transaction_after_its_writes_are_answered() -> None:
    r = Run()
    r.script.when(lambda: r.transactions.committed_outputs, r.loop.request_stop)
    run(r)
    assert r.client.commits == []  # never the consumer's own commit
    assert r.transactions.commits and r.last_offset() == 6
    assert r.transactions.flushed_before_commit[0] == 0  # every output answered first
    assert r.committed_values() == list(range(6))
    assert r.loop.stats()["transactions_committed"] >= 1
    assert r.loop.stats()["partitions"][next(iter(r.loop.stats()["partitions"]))]["committed"] == 6


def test_an_aborted_transaction_is_redone_from_the_first_offset_received() -> None:
    r = Run()
    r.transactions.fail.append(Aborted("ILLEGAL_GENERATION: fenced by a rebalance"))
    r.script.when(lambda: len(r.transactions.commits) >= 1, r.loop.request_stop)
    run(r)
    assert r.client.seeks == [(0, 0)]  # nothing was committed: back to the first offset
    assert [o for _, o in r.engine.handled] == list(range(6)) * 2  # every record redone
    assert r.committed_values() == list(range(6))  # each output committed once
    stats = r.loop.stats()
    assert stats["transactions_aborted"] == 1 and stats["transactions_committed"] >= 1
    assert r.last_offset() == 6


def test_an_abort_rewinds_to_the_last_committed_transaction() -> None:
    r = Run(records=3)

    def more_and_abort() -> None:
        r.client.produce(0, 3)  # offsets 3-5, in the next transaction, which aborts
        r.transactions.fail.append(Aborted("a refused output"))

    r.script.when(lambda: len(r.transactions.commits) == 1, more_and_abort)
    r.script.when(lambda: len(r.transactions.commits) == 2, r.loop.request_stop)
    run(r)
    assert r.transactions.commits[0][-1][1] == 3
    assert r.client.seeks == [(0, 3)]
    assert [o for _, o in r.engine.handled] == [0, 1, 2, 3, 4, 5, 3, 4, 5]
    assert r.committed_values() == list(range(6))
    assert r.last_offset() == 6


def test_work_in_flight_across_an_abort_is_fenced_and_its_outputs_dropped() -> None:
    first_try: set[int] = set()

    def hold(item: WorkItem[object]) -> bool:
        offset = item.record.offset
        if offset == 4 and offset not in first_try:  # only its first attempt hangs
            first_try.add(offset)
            return True
        return False

    r = Run(hold=hold, ordering="unordered")
    r.transactions.fail.append(Aborted("fenced by a rebalance"))
    # The abort comes at the first commit, with offset 4 still running; it ends afterwards.
    r.script.when(lambda: r.client.seeks and 4 in r.engine.held, lambda: r.engine.finish_late(4))
    r.script.when(
        lambda: len(r.transactions.commits) >= 1 and r.last_offset() == 6, r.loop.request_stop
    )
    run(r)
    assert r.committed_values() == list(range(6))
    assert r.loop.stats()["fenced"] == 1


def test_lost_partitions_abort_the_open_transaction() -> None:
    # Outputs of partition 1's records are in the open transaction when it is lost: committing
    # it would publish them without their offsets, and the new owner would write them again.
    r = Run()
    r.client.produce(1, 6)
    r.client.rebalance("assign", 1)
    r.script.when(lambda: len(r.sink.writes) == 12, lambda: r.client.rebalance("lost", 1))
    r.script.when(lambda: r.transactions.commits and r.last_offset() == 6, r.loop.request_stop)
    run(r)
    assert r.transactions.aborts == 1
    assert r.client.seeks == [(0, 0)]
    assert r.committed_values() == list(range(6))  # partition 0's, once; none of partition 1
    assert r.loop.stats()["transactions_aborted"] == 1


def test_writes_that_do_not_finish_abort_the_transaction_instead_of_waiting() -> None:
    r = Run()
    r.transactions.left = 2  # two writes never answered at the first commit

    def answer_all_later() -> None:
        r.transactions.left = 0

    r.script.when(lambda: r.transactions.aborts == 1, answer_all_later)
    r.script.when(lambda: r.transactions.commits and r.last_offset() == 6, r.loop.request_stop)
    run(r)
    assert r.transactions.aborts == 1 and r.client.seeks == [(0, 0)]
    assert r.committed_values() == list(range(6))


def test_a_producer_fenced_by_a_newer_instance_ends_the_run_with_kafka_fatal_error() -> None:
    r = Run()
    r.transactions.fail.append(
        KafkaException(
            KafkaError(KafkaError._FENCED, "Producer fenced by newer instance", fatal=True)
        )
    )
    with pytest.raises(KafkaFatalError) as raised:
        run(r)
    assert raised.value.name == "PRODUCER_FENCED"
    assert "same transactional_id" in str(raised.value)
    assert r.transactions.committed_outputs == []
    assert r.client.commits == []


def test_a_record_refused_for_good_in_an_aborted_transaction_is_not_written_again() -> None:
    r = Run(records=3, retries=0, on_failure="skip")

    def refuse_1() -> None:
        r.sink.answer(1, refuse="TOPIC_AUTHORIZATION_FAILED: not allowed")
        r.transactions.fail.append(Aborted("the refusal aborted the transaction"))

    r.script.when(lambda: r.sink.pending(1), refuse_1)
    r.script.when(lambda: r.transactions.commits and r.last_offset() == 3, r.loop.request_stop)
    run(r)
    writes_of_1 = [v for v in r.sink.written if v == b"1"]
    assert writes_of_1 == [b"1"]  # redone after the abort, but skipped without a write
    assert r.committed_values() == [0, 2]
    assert r.loop.stats()["skipped"] == 2  # once in the aborted transaction, once after


def test_writes_failed_only_by_their_transaction_do_not_count_against_their_records() -> None:
    r = Run(records=3, retries=0, on_failure="skip")

    def refuse_1_then_2_as_collateral() -> None:
        r.sink.answer(1, refuse="TOPIC_AUTHORIZATION_FAILED: not allowed")
        index = next(i for i, (o, _) in enumerate(r.sink.writes) if o[0].value == b"2")
        outputs, on_written = r.sink.writes.pop(index)
        on_written(Refusal(0, outputs[0], "the transaction failed earlier", TRANSACTION_ABORTING))
        r.transactions.fail.append(Aborted("the refusal aborted the transaction"))

    r.script.when(lambda: r.sink.pending(1) and r.sink.pending(2), refuse_1_then_2_as_collateral)
    r.script.when(lambda: r.transactions.commits and r.last_offset() == 3, r.loop.request_stop)
    run(r)
    assert r.committed_values() == [0, 2]  # 2 redone and written; only 1 given up
    assert r.loop.stats()["skipped"] == 2  # 1, in the aborted transaction and after it


@pytest.mark.parametrize(
    ("options", "kafka", "needle"),
    [
        ({"transactional_id": ""}, {}, "non-empty string"),
        (
            {"transactional_id": "t", "commit_interval_s": 55.0, "revoke_grace_s": 10.0},
            {},
            "transaction.timeout.ms=60000 is too short",
        ),
        (
            {
                "transactional_id": "t",
                "output_producer_config": {
                    "bootstrap.servers": "b:9092",
                    "transaction.timeout.ms": 15000,
                },
            },
            {},
            "transaction.timeout.ms=15000 is too short",
        ),
        ({"transactional_id": "t"}, {"isolation.level": "read_uncommitted"}, "read_committed"),
        ({"transactional_id": "t"}, {"transaction.timeout.ms": 5000}, "=5000 is too short"),
        ({}, {"transactional.id": "t"}, "transactional.id in kafka_config"),
        (
            {"output_producer_config": {"bootstrap.servers": "b:9092", "transactional.id": "t"}},
            {},
            "transactional.id in output_producer_config",
        ),
        (
            {
                "transactional_id": "t",
                "dlq_topic": "dlq",
                "dlq_producer_config": {"bootstrap.servers": "b:9092"},
            },
            {},
            "drop dlq_producer_config",
        ),
    ],
)
def test_settings_exactly_once_cannot_work_with_are_refused_when_built(
    options: dict[str, Any], kafka: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ValueError, match=needle.replace(".", r"\.")):
        build_config(
            {"bootstrap.servers": "b:9092", "group.id": "g", **kafka},
            topics=["t-in"],
            outputs=True,
            **options,
        )


def no_work(record: object) -> None:
    """A handler the process engine can pickle."""


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_a_run_that_cannot_start_its_transactions_raises_why_with_every_engine(
    engine: str,
) -> None:
    # The producer fails before any engine started: the run raises that error, not one from
    # closing an engine that never ran.
    r = Run()
    real = engine_spec(engine).create(no_work, r.config, None, None)
    refused = KafkaError_("transaction.timeout.ms is above the brokers' limit", 50, "X")

    def refuse() -> None:
        raise refused

    r.transactions.start = refuse  # type: ignore[method-assign]
    loop = ControlLoop(
        r.config,
        real,
        clock=r.clock,
        client_factory=r.client.factory,
        output_sink=r.sink,
        transactions=r.transactions,  # type: ignore[arg-type]
    )
    with pytest.raises(KafkaError_) as raised:
        loop.run(max_records=None, timeout=5.0)
    assert raised.value is refused


def test_transactions_that_no_coordinator_answers_name_the_servers_to_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real producer, with nothing listening at its address: librdkafka's own words
    ("Timed out ... retry call to resume") named neither the brokers nor the setting."""
    monkeypatch.setattr(transactions, "COMMIT_TIMEOUT_S", 1.0)
    producer = transactions.TransactionalProducer({"bootstrap.servers": "127.0.0.1:9"}, "tx-1")
    with pytest.raises(KafkaError_) as raised:
        producer.start()
    message = str(raised.value)
    assert "could not start transactions with transactional_id 'tx-1'" in message
    assert "no transaction coordinator answered within 1 s" in message
    assert "bootstrap.servers=127.0.0.1:9 are reachable" in message
    producer.close(0)


@pytest.mark.parametrize("route", ["the commit aborted", "writes left unanswered"])
def test_a_revoke_whose_commit_aborts_commits_no_offset_past_the_aborted_outputs(
    route: str,
) -> None:
    """The revoke commits, waits for the work still running (its grace), then commits again.
    When the first commit's transaction aborts, the revoked partition's completed records
    lost their outputs with it: the second commit must not commit their offsets (the next
    owner redoes them), or their outputs are never written; nor wait out the grace."""
    revoked_by: list[float] = []  # when the revoke ended, on the fake clock
    r = Run(
        hold=lambda item: item.record.offset == 4,
        on_revoke=lambda partitions: revoked_by.append(r.clock()),
        revoke_grace_s=5.0,
    )

    def revoke() -> None:
        if route == "the commit aborted":
            r.transactions.fail.append(Aborted("a commit that kept timing out"))
        else:
            r.transactions.left = 1  # the flush leaves one write unanswered: aborted
            abort = r.transactions.abort

            def abort_answering_later() -> None:
                abort()
                r.transactions.left = 0  # the next flush answers it

            r.transactions.abort = abort_answering_later  # type: ignore[method-assign]
        r.client.rebalance("revoke", 0)

    # Offsets 0-3 and 5 wrote their outputs, 4 is still running: the revoke finds it busy.
    r.script.when(lambda: 4 in r.engine.held and len(r.sink.writes) >= 4, revoke)
    r.script.when(lambda: revoked_by, r.loop.request_stop)
    started = r.clock()
    run(r)
    assert r.loop.stats()["transactions_aborted"] == 1
    assert r.transactions.commits == [], r.transactions.commits  # offset 4 was committed
    assert r.transactions.committed_outputs == []
    assert revoked_by[0] - started < 5.0  # the grace was not waited out
