"""Consume, transform, produce with exactly once (`transactional_id`) on Apache Kafka.

A downstream reader with `isolation.level=read_committed` reads the output topic to its end:
each input record's output is there exactly once, a key's outputs in input order, and the
group's committed offsets (written in the same transactions) are the input's ends. Every
engine with key order, and one partition-order and one unordered run, 20,000 records each. A
handler that fails some records with on_failure="dead_letter": each dead letter exactly once in
a read_committed read of the dead-letter topic, in the same transactions as the outputs. An
output over its topic's max.message.bytes: a failed attempt, then the policy, and the outputs
a read_committed reader sees are those of exactly the records the commit passed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from eos_support import (
    committed_outputs,
    dead_letter_sources,
    read_to_end,
    verdict,
)
from outputs_support import OUT_TOPIC_ENV, output_of, transform, transform_async
from support import committed, end_offsets, group_name

from pyrallel_consumer import Output, ParallelConsumer, ProcessingError, Record
from pyrallel_consumer.control import offset_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 8
KEYS = 100
RUN_TIMEOUT_S = 300.0


def _consumer(broker: Any, topic: str, group: str, **options: Any) -> ParallelConsumer:
    return ParallelConsumer(
        broker.consumer_config(group),
        topics=[topic],
        outputs=True,
        transactional_id=f"{group}-0",
        commit_interval_s=0.2,
        **options,
    )


@pytest.mark.parametrize(
    ("engine", "ordering"),
    [
        ("baseline", "key"),
        ("async", "key"),
        ("process", "key"),
        ("async", "partition"),
        ("process", "unordered"),
    ],
)
def test_every_output_exactly_once(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    ordering: str,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    out_topic = new_topic(kafka_broker, PARTITIONS, prefix="eos-out")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)  # the process engine's workers inherit it
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("eos")
    handler = transform_async if engine == "async" else transform
    options: dict[str, Any] = {"workers": 2} if engine == "process" else {}
    consumer = _consumer(
        kafka_broker, topic, group, handler=handler, engine=engine, ordering=ordering, **options
    )
    assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == RECORDS

    stats = consumer.stats()
    assert stats["transactions_committed"] >= 1
    assert stats["transactions_aborted"] == 0  # no fault: nothing to redo
    result = verdict(
        ((r.partition, r.offset) for r in produced),
        committed_outputs(kafka_broker, out_topic, PARTITIONS),
    )
    result.assert_exactly_once(ordered=ordering != "unordered")
    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)


# ---- dead letters in the transaction ------------------------------------------------------------

FAIL_EVERY = 50  # records whose offset % FAIL_EVERY == FAIL_AT fail every attempt
FAIL_AT = 7


def fail_some(record: Record) -> Output:
    """One output per record; some records fail every attempt (module level: picklable)."""
    if record.offset % FAIL_EVERY == FAIL_AT:
        raise ValueError(f"refusing {record.partition}:{record.offset}")
    return output_of(record)


@pytest.mark.parametrize("engine", ["async", "process"])
def test_dead_letters_exactly_once(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
) -> None:
    partitions, records = 4, 4_000
    topic = new_topic(kafka_broker, partitions)
    out_topic = new_topic(kafka_broker, partitions, prefix="eos-out")
    dlq_topic = new_topic(kafka_broker, 1, prefix="eos-dlq")
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produced = produce(kafka_broker, topic, records, keys=KEYS)
    failing = {(r.partition, r.offset) for r in produced if r.offset % FAIL_EVERY == FAIL_AT}
    assert failing
    group = group_name("eos-dlq")
    options: dict[str, Any] = {"workers": 2} if engine == "process" else {}
    consumer = _consumer(
        kafka_broker,
        topic,
        group,
        handler=fail_some,
        engine=engine,
        retries=1,
        retry_backoff_s=0.01,
        on_failure="dead_letter",
        dlq_topic=dlq_topic,
        **options,
    )
    assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == records

    assert consumer.stats()["transactions_aborted"] == 0
    dead = Counter(dead_letter_sources(read_to_end(kafka_broker, dlq_topic, 1, "read_committed")))
    assert set(dead) == failing, f"dead letters {len(dead)}, failing records {len(failing)}"
    assert max(dead.values()) == 1, f"dead letters written twice: {dead.most_common(3)}"
    result = verdict(
        ((r.partition, r.offset) for r in produced if (r.partition, r.offset) not in failing),
        committed_outputs(kafka_broker, out_topic, partitions),
    )
    result.assert_exactly_once()
    final = committed(kafka_broker, group, topic, partitions)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)


# ---- an output the broker would refuse ----------------------------------------------------------

POISON_OFFSET = 20
OUT_MAX_BYTES = 10_000  # the output topic's max.message.bytes


def too_large_at_poison(record: Record) -> Output:
    """One output per record; the poison record's is over the output topic's limit."""
    output = output_of(record)
    if record.offset != POISON_OFFSET:
        return output
    return Output(output.topic, b"x" * (OUT_MAX_BYTES * 2), output.key, output.headers)


@pytest.mark.parametrize("on_failure", ["stop", "skip"])
def test_an_output_over_the_topic_limit_exactly_once(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    monkeypatch: pytest.MonkeyPatch,
    on_failure: str,
) -> None:
    """The refused output is a failed attempt, then the policy. A read_committed reader sees
    the outputs of exactly the records the group's commit passed (below the committed offset
    or listed above it in the commit metadata), each once."""
    records = 100
    topic = new_topic(kafka_broker, 1)
    out_topic = new_topic(
        kafka_broker, 1, prefix="eos-out", config={"max.message.bytes": str(OUT_MAX_BYTES)}
    )
    monkeypatch.setenv(OUT_TOPIC_ENV, out_topic)
    produce(kafka_broker, topic, records, keys=4)
    group = group_name("eos-refused")
    consumer = _consumer(
        kafka_broker,
        topic,
        group,
        handler=too_large_at_poison,
        engine="baseline",
        retries=2,
        retry_backoff_s=0.01,
        on_failure=on_failure,
    )
    if on_failure == "stop":
        with pytest.raises(ProcessingError) as raised:
            consumer.run(until_end=True, timeout=RUN_TIMEOUT_S)
        error = raised.value
        assert (error.topic, error.partition, error.offset) == (topic, 0, POISON_OFFSET)
    else:
        assert consumer.run(until_end=True, timeout=RUN_TIMEOUT_S) == records
    (tp,) = committed(kafka_broker, group, topic, 1).values()
    passed = set(range(tp.offset))
    if tp.metadata:
        passed |= offset_metadata.decode(tp.offset, tp.metadata)
    if on_failure == "stop":
        assert tp.offset == POISON_OFFSET  # nothing committed past the failed record
    else:
        assert tp.offset == records
        passed -= {POISON_OFFSET}  # skipped: committed, and no output
    result = verdict(((0, o) for o in passed), committed_outputs(kafka_broker, out_topic, 1))
    result.assert_exactly_once()
