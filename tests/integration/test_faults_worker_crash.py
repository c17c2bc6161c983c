"""Process engine: worker processes that die (fault 2 of issue 10, and its test gaps).

- A record whose handler kills its worker (os._exit, a signal) is identified, counted as a failed
  attempt each time, and after the retries handed to the on-failure policy with an error naming
  the exit code or signal; the other records continue; the run ends instead of crash-looping.
- Workers that die with no record to blame (here: in worker_init) use up a restart budget and
  end the run with a clear error.
- A worker killed from outside mid-run: every record it owned still completes.
- The engine's own reader threads (issue 17): results the parent cannot decode, or worker
  processes the system refuses to start, end the run with WorkerError (the cause attached)
  instead of leaving records in flight with nobody running them.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    TRACE_ENV,
    Completions,
    RunThread,
    block_until_released,
    committed_offset,
    group_name,
    read_topic,
    read_trace,
    release,
    trace,
    wait_for,
)

from pyrallel_consumer import ParallelConsumer, ProcessingError, PyrallelError, Record, WorkerError
from pyrallel_consumer.codec import Codec, CodecError, Result
from pyrallel_consumer.engines import process as process_engine
from pyrallel_consumer.engines import worker_handle

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 100
KEYS = 5
POISON_OFFSET = 37
HELD_OFFSET = 300
RUN_TIMEOUT_S = 30.0  # the run must end long before this; today it crash-loops until it

# ---- handlers (module level: worker processes import them) -----------------------------------


def exit_on_poison(record: Record) -> None:
    if record.offset == POISON_OFFSET:
        os._exit(3)


def kill_on_poison(record: Record) -> None:
    if record.offset == POISON_OFFSET:
        os.kill(os.getpid(), signal.SIGKILL)


def slow_noop(record: Record) -> None:
    time.sleep(0.002)


def hold_one_per_partition(record: Record) -> None:
    """Holds one record of each partition until released, tracing the pid of the worker that
    holds it, so the test kills a worker that surely owns records mid-run."""
    if record.offset == HELD_OFFSET:
        trace("held", str(os.getpid()))
        block_until_released()
    else:
        time.sleep(0.001)


def exit_at_start() -> None:
    os._exit(5)


# ---- tests -------------------------------------------------------------------------------------


def _consumer(
    broker: Any, group: str, topic: str, handler: Callable[[Record], Any], **options: Any
) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine="process",
        ordering="key",
        workers=2,
        worker_concurrency=4,
        retries=1,
        retry_backoff_s=0.01,
        commit_interval_s=0.2,
        drain_timeout_s=10,
        **options,
    )


def test_a_record_that_kills_its_worker_is_dead_lettered(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., list[Any]]
) -> None:
    topic = new_topic(kafka_broker, 1)
    dlq = new_topic(kafka_broker, 1, prefix="dlq")
    produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("worker-exit")
    completions = Completions()
    consumer = _consumer(
        kafka_broker, group, topic, exit_on_poison, dlq_topic=dlq, on_complete=completions
    )
    started = time.monotonic()
    completed = consumer.run(max_records=RECORDS, timeout=RUN_TIMEOUT_S)
    elapsed = time.monotonic() - started
    stats = consumer.stats()

    assert completed == RECORDS, (
        f"{completed} of {RECORDS} completed in {elapsed:.0f} s; "
        f"worker restarts: {stats['engine_info']['worker_restarts']}"
    )
    by_offset = {c.offset: c for c in completions.snapshot()}
    assert set(by_offset) == set(range(RECORDS))
    poison = by_offset[POISON_OFFSET]
    assert not poison.ok
    assert poison.attempts == 2  # retries=1: two attempts, each one a dead worker
    assert poison.error is not None and "exit code 3" in poison.error
    assert all(c.ok for o, c in by_offset.items() if o != POISON_OFFSET)
    assert stats["dead_lettered"] == 1
    # One restart per death: at most one unattributed death (several records were running),
    # then one per attempt of the record alone.
    assert stats["engine_info"]["worker_restarts"] <= 2 * (1 + 1)

    (letter,) = read_topic(kafka_broker, dlq, 1)
    headers = dict(letter.headers() or [])
    assert headers["pyrallel.source.offset"] == str(POISON_OFFSET).encode()
    assert b"exit code 3" in headers["pyrallel.error"]
    assert committed_offset(kafka_broker, group, topic) == RECORDS


def test_a_record_that_kills_its_worker_stops_the_run_naming_the_signal(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., list[Any]]
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("worker-kill")
    consumer = _consumer(kafka_broker, group, topic, kill_on_poison, on_failure="stop")
    started = time.monotonic()
    try:
        consumer.run(timeout=RUN_TIMEOUT_S)
    except ProcessingError as exc:
        error = exc
    else:
        stats = consumer.stats()
        raise AssertionError(
            f"run() returned after {time.monotonic() - started:.0f} s without a "
            f"ProcessingError; worker restarts: {stats['engine_info']['worker_restarts']}"
        )
    assert (error.offset, error.attempts) == (POISON_OFFSET, 2)
    assert "SIGKILL" in str(error)
    assert committed_offset(kafka_broker, group, topic) <= POISON_OFFSET


def test_workers_dying_with_no_record_to_blame_end_the_run(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., list[Any]]
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 10, keys=KEYS)
    consumer = _consumer(
        kafka_broker, group_name("worker-init"), topic, slow_noop, worker_init=exit_at_start
    )
    started = time.monotonic()
    with pytest.raises(PyrallelError) as raised:
        consumer.run(timeout=RUN_TIMEOUT_S)
    message = str(raised.value)
    assert "exit code 5" in message
    assert "restart" in message
    assert time.monotonic() - started < RUN_TIMEOUT_S


def test_a_killed_worker_loses_no_record(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    records = 2_000
    topic = new_topic(kafka_broker, 2)
    produced = produce(kafka_broker, topic, records, keys=20)
    group = group_name("worker-killed")
    completions = Completions()
    consumer = _consumer(
        kafka_broker, group, topic, hold_one_per_partition, on_complete=completions
    )
    run = RunThread(consumer, max_records=records, timeout=180)
    try:
        wait_for(
            lambda: bool(read_trace(tmp_path, "held")), "a worker to hold a record", alive=run.alive
        )
        victim = int(read_trace(tmp_path, "held")[0])
        os.kill(victim, signal.SIGKILL)
    finally:
        release(tmp_path)
    run.join(180)
    assert run.error is None, run.error
    assert run.result == records, f"{run.result} of {records} completed"
    assert len(completions) >= records  # the ones in flight at the kill may complete twice
    want = {(r.partition, r.offset) for r in produced}
    assert {(c.partition, c.offset) for c in completions.snapshot()} == want
    stats = consumer.stats()
    assert stats["engine_info"]["worker_restarts"] >= 1
    assert victim not in stats["engine_info"]["worker_pids"]
    for partition in (0, 1):
        end = max(r.offset for r in produced if r.partition == partition) + 1
        assert committed_offset(kafka_broker, group, topic, partition) == end


def test_results_the_parent_cannot_decode_end_the_run_with_worker_error(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_load_codec = process_engine.load_codec

    def undecodable(data: bytes) -> list[Result]:
        raise CodecError("malformed result batch: injected")

    def garbling_codec(name: str) -> Codec:
        return dataclasses.replace(real_load_codec(name), decode_results=undecodable)

    monkeypatch.setattr(process_engine, "load_codec", garbling_codec)  # the parent's side only
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("worker-undecodable")
    consumer = _consumer(kafka_broker, group, topic, slow_noop)
    with pytest.raises(WorkerError, match="cannot decode") as raised:
        consumer.run(timeout=RUN_TIMEOUT_S)
    assert isinstance(raised.value.__cause__, CodecError)
    assert consumer.stats()["engine_info"]["worker_pids"] == []
    # No result trusted, so none completed: nothing committed past the first record.
    assert committed_offset(kafka_broker, group, topic) <= 0


def test_workers_the_system_refuses_to_start_end_the_run_with_worker_error(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: Any) -> Any:
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(worker_handle, "start_worker_process", refuse)
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 10, keys=KEYS)
    group = group_name("worker-unstartable")
    consumer = _consumer(kafka_broker, group, topic, slow_noop)
    with pytest.raises(WorkerError, match="could not start worker") as raised:
        consumer.run(timeout=RUN_TIMEOUT_S)
    assert isinstance(raised.value.__cause__, OSError)
    assert committed_offset(kafka_broker, group, topic) <= 0
