"""Batch mode on Apache Kafka, every engine x every ordering: 20,000 records in batches of 100,
each processed once, per-key (per-partition) order kept within and across batches, offsets
committed at the end; a poison record among 10,000 is dead-lettered alone."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batch_support import (
    POISON_ENV,
    TRACE_ENV,
    async_batch_handler,
    batch_handler,
    dying_batch_handler,
    in_lanes,
    read_traces,
)
from support import assert_lane_order, committed, end_offsets, read_topic

from pyrallel_consumer import Completion, ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 8
KEYS = 100
BATCH = 100
RUN_TIMEOUT_S = 240.0

CASES = [
    (engine, ordering, handler)
    for engine, handler in (
        ("baseline", batch_handler),
        ("async", async_batch_handler),
        ("async", batch_handler),
        ("process", batch_handler),
    )
    for ordering in ("key", "partition", "unordered")
    if not (handler is batch_handler and engine == "async" and ordering != "key")
]


@pytest.mark.parametrize(
    ("engine", "ordering", "handler"),
    CASES,
    ids=[f"{e}-{o}-{h.__name__}" for e, o, h in CASES],
)
def test_batches_keep_order_and_commit(
    engine: str,
    ordering: str,
    handler: Callable[[list[Record]], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    group = f"batches-{uuid.uuid4().hex[:8]}"
    completions: list[Completion] = []
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering=ordering,
        batch_size=BATCH,
        commit_interval_s=0.5,
        on_complete=completions.append,
    )
    assert consumer.run(max_records=RECORDS, timeout=RUN_TIMEOUT_S) == RECORDS
    stats = consumer.stats()

    want = {(r.partition, r.offset) for r in produced}
    done = [(c.partition, c.offset) for c in completions]
    assert set(done) == want
    assert len(done) == len(set(done)), "a record completed twice"
    assert all(c.ok and c.attempts == 1 for c in completions)
    executions = read_traces(tmp_path)
    handled = [(e.partition, e.offset) for e in executions]
    assert sorted(handled) == sorted(want), "a record was handled twice or never"
    calls = {e.call for e in executions}
    assert len(calls) == stats["batches"]["batches"] == stats["batches"]["calls"]
    assert stats["batches"]["records"] == RECORDS
    assert len(calls) < RECORDS / 10, f"{len(calls)} calls: records were not batched"
    assert max(sum(1 for e in executions if e.call == c) for c in calls) <= BATCH
    if ordering != "unordered":
        assert_lane_order(in_lanes(executions, ordering))
    ends = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in ends.items()} == end_offsets(produced)


FAILURE_CASES = [
    ("baseline", batch_handler),
    ("async", async_batch_handler),
    ("process", batch_handler),
    ("process", dying_batch_handler),  # the poison record kills its worker
]


@pytest.mark.parametrize(
    ("engine", "handler"), FAILURE_CASES, ids=[f"{e}-{h.__name__}" for e, h in FAILURE_CASES]
)
def test_poison_record_is_dead_lettered_alone(
    engine: str,
    handler: Callable[[list[Record]], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    records = 10_000
    topic = new_topic(kafka_broker, 4)
    dlq = new_topic(kafka_broker, 1, prefix="dlq")
    produced = produce(kafka_broker, topic, records, keys=50)
    poison = produced[records // 2]
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    monkeypatch.setenv(POISON_ENV, f"{poison.partition}:{poison.offset}")
    group = f"batch-dlq-{uuid.uuid4().hex[:8]}"
    completions: list[Completion] = []
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering="key",
        batch_size=BATCH,
        retries=1,
        retry_backoff_s=0.01,
        dlq_topic=dlq,
        commit_interval_s=0.5,
        on_complete=completions.append,
        **({"workers": 2} if engine == "process" else {}),
    )
    assert consumer.run(max_records=records, timeout=RUN_TIMEOUT_S) == records
    stats = consumer.stats()

    failed = [c for c in completions if not c.ok]
    assert [(c.partition, c.offset) for c in failed] == [(poison.partition, poison.offset)]
    assert stats["dead_lettered"] == 1
    assert stats["batches"]["splits"] == 1
    (letter,) = read_topic(kafka_broker, dlq, 1)
    assert letter.value() == poison.value
    want = {(r.partition, r.offset) for r in produced}
    done = [(c.partition, c.offset) for c in completions]
    assert len(done) == len(set(done)) and set(done) == want
    executions = read_traces(tmp_path)
    handled = [(e.partition, e.offset) for e in executions]
    if handler is dying_batch_handler:
        # Batches that finished in the dying worker before their results left it are redone
        # (at least once): each record is handled, none twice at once (checked below).
        assert set(handled) == want - {(poison.partition, poison.offset)}
        last = {(e.partition, e.offset): e for e in sorted(executions, key=lambda e: e.start)}
        executions = list(last.values())  # order holds for the last execution of each
    else:
        assert sorted(handled) == sorted(want - {(poison.partition, poison.offset)})
    assert_lane_order(in_lanes(executions, "key"))
    ends = committed(kafka_broker, group, topic, 4)
    assert {p: tp.offset for p, tp in ends.items()} == end_offsets(produced)
