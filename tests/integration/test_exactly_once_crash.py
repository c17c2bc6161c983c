"""Exactly once across a crash and a broker restart, on Apache Kafka.

SIGKILL: the consumer (a subprocess, outputs_worker.py) is killed while a transaction of its is
open with outputs in it, after some transactions committed; a restart with the same
`transactional_id` aborts that transaction and redoes its records. A read_committed reader of
the output topic sees every output exactly once; a read_uncommitted reader sees the aborted
outputs too, so the records of the open transaction twice. To make that deterministic the
worker is frozen (SIGSTOP) at a moment its open transaction holds outputs (the topic's last
stable offset below its high watermark, and staying so), then killed.

Broker restart: the broker (this test's own, persistent data) is stopped and started again
while records complete and their outputs are produced; afterwards a read_committed reader sees
every output exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from eos_support import committed_outputs, read_to_end, verdict, watermarks
from faults_support import RunThread
from outputs_support import OUT_TOPIC_ENV, duplicates, output_of, sources
from restart_support import Broker, RestartableKafka
from support import (
    committed,
    end_offsets,
    group_name,
    produce_records,
    reaped,
    running,
    start_worker,
    wait_for,
    wait_handled,
)

from pyrallel_consumer import Output, ParallelConsumer, Record
from pyrallel_consumer.errors import KafkaFatalError

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKER = Path(__file__).with_name("outputs_worker.py")
WAIT_S = 180.0
SETTLE_S = 1.0  # a second look at the watermarks after this: an EndTxn sent just before the stop


def some_committed(broker: Any, group: str, topic: str, partitions: int) -> Callable[[], bool]:
    def check() -> bool:
        return any(tp.offset > 0 for tp in committed(broker, group, topic, partitions).values())

    return check


def open_transaction(marks: dict[int, tuple[int, int]]) -> bool:
    """Whether a transaction holds records below the high watermark of some partition."""
    return any(lso < high for lso, high in marks.values())


def freeze_in_open_transaction(
    process: subprocess.Popen[bytes], broker: Any, topic: str, partitions: int
) -> dict[int, tuple[int, int]]:
    """SIGSTOP `process` at a moment its open transaction holds records of `topic`: some
    partition's last stable offset below its high watermark, the same on a second look
    SETTLE_S later. Otherwise SIGCONT, let it run and try again. Returns the watermarks
    (partition -> (last stable offset, high watermark)) it was frozen at."""
    deadline = time.monotonic() + WAIT_S
    while True:
        process.send_signal(signal.SIGSTOP)
        marks = watermarks(broker, topic, partitions)
        if open_transaction(marks):
            time.sleep(SETTLE_S)
            if watermarks(broker, topic, partitions) == marks:
                return marks
        process.send_signal(signal.SIGCONT)
        assert process.poll() is None, f"the worker exited ({process.returncode})"
        assert time.monotonic() < deadline, "never found the worker in an open transaction"
        time.sleep(0.05)


def test_sigkill_in_a_transaction_then_restart_outputs_exactly_once(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    records, partitions = 20_000, 4
    topic = new_topic(kafka_broker, partitions)
    out_topic = new_topic(kafka_broker, partitions, prefix="eos-out")
    produced = produce(kafka_broker, topic, records, keys=100)
    group = group_name("eos-crash")
    transactional_id = f"{group}-0"
    first_file, second_file = tmp_path / "first.txt", tmp_path / "second.txt"
    args = (out_topic, transactional_id)

    with reaped(start_worker(WORKER, kafka_broker, topic, group, first_file, *args)) as first:
        wait_handled(first, first_file, records * 0.3, WAIT_S)
        wait_for(
            some_committed(kafka_broker, group, topic, partitions),
            "a committed transaction",
            every_s=0.2,
            timeout=WAIT_S,
            alive=running(first),
        )
        frozen = freeze_in_open_transaction(first, kafka_broker, out_topic, partitions)
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    with reaped(start_worker(WORKER, kafka_broker, topic, group, second_file, *args)) as second:
        assert second.wait(WAIT_S) == 0  # until_end: done once every record completed

    read = committed_outputs(kafka_broker, out_topic, partitions)
    verdict(((r.partition, r.offset) for r in produced), read).assert_exactly_once()
    final = committed(kafka_broker, group, topic, partitions)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)

    # The transaction open at the kill was aborted: a read_committed reader never sees its
    # outputs, a read_uncommitted one does, and their records were redone, so written twice.
    def in_killed_transaction(row: tuple[int, int, bytes | None, int, int]) -> bool:
        lso, high = frozen[row[3]]
        return lso <= row[4] < high

    assert not [row for row in read if in_killed_transaction(row)]
    uncommitted = sources(read_to_end(kafka_broker, out_topic, partitions, "read_uncommitted"))
    aborted = {(p, o) for p, o, *_ in filter(in_killed_transaction, uncommitted)}
    assert aborted, f"no output of the open transaction read back: {frozen}"
    assert aborted <= {(p, o) for p, o, *_ in read}  # redone, and committed
    assert duplicates(uncommitted) >= len(aborted)
    print(
        f"killed in a transaction holding {len(aborted)} outputs; uncommitted read: "
        f"{duplicates(uncommitted)} duplicates of {records}"
    )


# ---- a broker restart --------------------------------------------------------------------------

RESTART_RECORDS = 4_000
RESTART_PARTITIONS = 2
SLOW_S = 0.05  # a record's service time while the broker restarts: outputs keep coming


def progress(consumer: ParallelConsumer, positions: dict[int, Any]) -> str:
    """The group's committed offsets and the consumer's counters, for a failed wait."""
    stats = consumer.stats()
    names = ("completed", "in_flight", "outputs_pending", "transactions_committed")
    counts = {name: stats[name] for name in (*names, "transactions_aborted")}
    return f"committed { ({p: tp.offset for p, tp in positions.items()}) }, {counts}"


def paced(
    gate: dict[int, int], opened: threading.Event, restarted: threading.Event
) -> Callable[[Record], Any]:
    """Records past `gate[partition]` wait for `opened`, then run slowly until `restarted`."""

    async def handle(record: Record) -> Output:
        while record.offset >= gate[record.partition] and not opened.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.001 if restarted.is_set() else SLOW_S)
        return output_of(record)

    return handle


def test_broker_restart_mid_run_outputs_exactly_once(
    own_kafka: RestartableKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = Broker(own_kafka.bootstrap_servers)
    topic, out_topic = f"eos-restart-{group_name('in')}", f"eos-restart-{group_name('out')}"
    admin = AdminClient(broker.client_config())
    for future in admin.create_topics(
        [NewTopic(name, RESTART_PARTITIONS, 1) for name in (topic, out_topic)]
    ).values():
        future.result(30)
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce_records(broker, topic, RESTART_RECORDS, keys=20)
    ends = end_offsets(produced)
    middle = {p: end // 2 for p, end in ends.items()}
    group = group_name("eos-restart")
    opened, restarted = threading.Event(), threading.Event()

    def new_consumer() -> ParallelConsumer:
        return ParallelConsumer(
            broker.consumer_config(group),
            topics=[topic],
            handler=paced(middle, opened, restarted),
            engine="async",
            ordering="key",
            commit_interval_s=0.2,
            outputs=True,
            transactional_id=f"{group}-0",
        )

    consumer = new_consumer()

    def committed_to(offsets: dict[int, int]) -> Callable[[], bool]:
        def check() -> bool:
            positions = committed(broker, group, topic, RESTART_PARTITIONS)
            return {p: tp.offset for p, tp in positions.items()} == offsets

        return check

    run = RunThread(consumer, timeout=WAIT_S * 2)
    done = committed_to(ends)
    try:
        wait_for(committed_to(middle), "commits up to the middle", alive=run.alive, every_s=0.2)
        opened.set()  # records complete slowly from now: the restart finds transactions open
        own_kafka.restart()
        restarted.set()
        wait_for(
            lambda: done() or not run.alive(),
            "every record committed, or the run ended",
            timeout=WAIT_S,
            every_s=0.5,
            state=lambda: progress(consumer, committed(broker, group, topic, RESTART_PARTITIONS)),
        )
        run.stop_and_join(WAIT_S)
    finally:
        opened.set()
        restarted.set()
        consumer.stop()
    if run.error is not None:
        # librdkafka can leave a transaction call waiting for good once its coordinator
        # restarted (issues 5456, 5511): the run ends with KafkaFatalError instead of hanging,
        # and a new run with the same transactional_id finishes the work.
        assert isinstance(run.error, KafkaFatalError), run.error
        assert run.error.name == "_TIMED_OUT" and "librdkafka" in str(run.error), run.error
        print(f"first run ended: {run.error}")
        consumer = new_consumer()  # the same transactional_id
        consumer.run(until_end=True, timeout=WAIT_S)
        assert done()
    stats = consumer.stats()
    print(
        f"transactions committed {stats['transactions_committed']}, "
        f"aborted {stats['transactions_aborted']}"
    )
    result = verdict(
        ((r.partition, r.offset) for r in produced),
        committed_outputs(broker, out_topic, RESTART_PARTITIONS),
    )
    result.assert_exactly_once()
