"""Exactly once: a transaction aborted mid-run, on Apache Kafka.

One record's output is refused by the broker inside a transaction: it is over the output
topic's max.message.bytes, and the output producer compresses (so the library does not check
sizes before producing: the limit applies to the compressed batch). That makes the transaction
abortable: it is aborted, every assigned partition is rewound to the offsets of the last
committed transaction and its records are redone; the refused record's attempts run out and
on_failure ("skip") takes it. Only that record: the others, whose outputs the broker never
refused, are redone until their outputs commit. A read_committed reader sees the outputs of
every other record exactly once, in key order.

The refused output goes to a partition of its own (1), every other output to partition 0, so
the broker refuses its record batch alone: no other output shares a batch with it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from eos_support import committed_outputs, verdict
from outputs_support import OUT_TOPIC_ENV, output_of
from support import committed, end_offsets, group_name

from pyrallel_consumer import Output, ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 400
POISON_OFFSET = 150
OUT_MAX_BYTES = 10_000  # the output topic's max.message.bytes
RUN_TIMEOUT_S = 120.0


def poisoned_at(poison_offset: int, pause_s: float) -> Callable[[Record], Awaitable[Output]]:
    """A handler with one output per record, to partition 0, after `pause_s`; the output of
    the record at `poison_offset` goes to partition 1, incompressible and twice the topic's
    limit."""

    async def handle(record: Record) -> Output:
        if pause_s:
            await asyncio.sleep(pause_s)
        output = output_of(record)
        if record.offset != poison_offset:
            return Output(output.topic, output.value, output.key, output.headers, partition=0)
        value = os.urandom(OUT_MAX_BYTES * 2)
        return Output(output.topic, value, output.key, output.headers, partition=1)

    return handle


def test_an_output_refused_inside_a_transaction_aborts_and_redoes_the_others(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, 1)
    out_topic = new_topic(
        kafka_broker, 2, prefix="eos-out", config={"max.message.bytes": str(OUT_MAX_BYTES)}
    )
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, RECORDS, keys=8)
    group = group_name("eos-abort")
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=poisoned_at(POISON_OFFSET, 0.001),
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
        outputs=True,
        transactional_id=f"{group}-0",
        output_producer_config=kafka_broker.client_config(**{"compression.type": "lz4"}),
        retries=2,
        retry_backoff_s=0.01,
        on_failure="skip",
    )
    # Not compared with RECORDS: records of an aborted transaction completed, and count, twice.
    completed = consumer.run(until_end=True, timeout=RUN_TIMEOUT_S)

    stats = consumer.stats()
    counts = {k: stats[k] for k in ("transactions_aborted", "failed", "skipped", "retries")}
    counts["run() returned"] = completed
    print(f"exactly once with a refused output: {counts}")
    result = verdict(
        ((r.partition, r.offset) for r in produced if r.offset != POISON_OFFSET),
        committed_outputs(kafka_broker, out_topic, 2),
    )
    result.assert_exactly_once()
    final = committed(kafka_broker, group, topic)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)
    # One abort per attempt of the refused record; it is skipped in the last aborted
    # transaction and again, for good, when redone (counters include aborted work).
    assert stats["transactions_aborted"] >= 1 and stats["skipped"] >= 1


LAST = 199  # the last record of a 200-record partition


def test_a_batch_job_whose_last_transaction_aborts_still_commits_to_the_end(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """until_end: the last record's output is refused (no retries, then skipped), so the
    transaction that would commit the end aborts. The run must not end on that: its records
    are redone and committed, and the group's committed offsets are the ends."""
    topic = new_topic(kafka_broker, 1)
    out_topic = new_topic(
        kafka_broker, 2, prefix="eos-out", config={"max.message.bytes": str(OUT_MAX_BYTES)}
    )
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, LAST + 1, keys=8)
    group = group_name("eos-abort-last")
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=poisoned_at(LAST, 0.0),  # the refused output on the last record
        engine="async",
        ordering="key",
        commit_interval_s=0.2,
        outputs=True,
        transactional_id=f"{group}-0",
        output_producer_config=kafka_broker.client_config(**{"compression.type": "lz4"}),
        retries=0,
        on_failure="skip",
    )
    consumer.run(until_end=True, timeout=RUN_TIMEOUT_S)
    stats = consumer.stats()
    print(f"transactions aborted {stats['transactions_aborted']}, skipped {stats['skipped']}")
    final = committed(kafka_broker, group, topic)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)
    result = verdict(
        ((r.partition, r.offset) for r in produced if r.offset != LAST),
        committed_outputs(kafka_broker, out_topic, 2),
    )
    result.assert_exactly_once()
