"""Failures: a poison key is retried, then dead-lettered with error headers while other keys keep
flowing; with on_failure='stop' the consumer stops with a ProcessingError and does not commit
the failed record."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import committed_offset, read_topic

from pyrallel_consumer import Completion, ParallelConsumer, ProcessingError, Record

pytestmark = pytest.mark.integration

RECORDS = 1_000
KEYS = 10
POISON_KEY = b"key-3"
HEADERS = [("trace-id", b"abc-123"), ("origin", b"test")]
TRACE_ENV = "PYRALLEL_TEST_TRACE_DIR"
STOP_OFFSET = 500

# ---- handlers (module level: the process engine pickles them) --------------------------------

_lock = threading.Lock()


def _trace(record: Record, start: float, ok: bool) -> None:
    path = os.path.join(os.environ[TRACE_ENV], f"trace-{os.getpid()}.txt")
    with _lock, open(path, "a") as out:
        out.write(f"{record.offset} {record.key.decode() if record.key else '-'} {start!r} {ok}\n")


def poison_handler(record: Record) -> None:
    start = time.monotonic()
    if record.key == POISON_KEY:
        _trace(record, start, False)
        raise ValueError(f"poison record at offset {record.offset}")
    _trace(record, start, True)


async def async_poison_handler(record: Record) -> None:
    await asyncio.sleep(0)
    poison_handler(record)


def stop_handler(record: Record) -> None:
    if record.offset == STOP_OFFSET:
        raise RuntimeError("cannot handle this one")


# ---- helpers ---------------------------------------------------------------------------------


def read_trace(directory: Path) -> list[tuple[int, str, float, bool]]:
    rows = []
    for path in directory.glob("trace-*.txt"):
        for line in path.read_text().splitlines():
            offset, key, start, ok = line.split()
            rows.append((int(offset), key, float(start), ok == "True"))
    rows.sort(key=lambda row: row[2])
    return rows


DLQ_CASES = [
    ("baseline", poison_handler),
    ("async", async_poison_handler),
    ("async", poison_handler),
    ("process", poison_handler),
]


@pytest.mark.parametrize(
    ("engine", "handler"), DLQ_CASES, ids=[f"{e}-{h.__name__}" for e, h in DLQ_CASES]
)
def test_poison_key_is_dead_lettered_and_others_flow(
    engine: str,
    handler: Callable[[Record], Any],
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = new_topic(kafka_broker, 2)
    dlq = new_topic(kafka_broker, 1, prefix="dlq")
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS, headers=HEADERS)
    poisoned = {(r.partition, r.offset): r for r in produced if r.key == POISON_KEY}
    monkeypatch.setenv(TRACE_ENV, str(tmp_path))
    group = f"poison-{uuid.uuid4().hex[:8]}"
    completions: list[Completion] = []
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=handler,
        engine=engine,
        ordering="key",
        retries=2,
        retry_backoff_s=0.005,
        retry_backoff_max_s=0.02,
        dlq_topic=dlq,
        commit_interval_s=0.2,
        on_complete=completions.append,
    )
    assert consumer.config.on_failure == "dead_letter"
    assert consumer.run(max_records=RECORDS, timeout=180) == RECORDS
    stats = consumer.stats()

    # Every record completed; the poisoned ones as failed after retries + 1 attempts.
    by_record = {(c.partition, c.offset): c for c in completions}
    assert set(by_record) == {(r.partition, r.offset) for r in produced}
    for where, completion in by_record.items():
        if where in poisoned:
            assert not completion.ok
            assert completion.attempts == 3
            assert completion.error is not None and "ValueError" in completion.error
        else:
            assert completion.ok and completion.attempts == 1
    assert stats["dead_lettered"] == len(poisoned)
    assert stats["failed"] == len(poisoned)
    assert stats["retries"] == 2 * len(poisoned)

    # The dead-letter topic holds each poisoned record once, with original and error headers.
    letters = read_topic(kafka_broker, dlq, len(poisoned))
    assert len(letters) == len(poisoned)
    for letter in letters:
        headers = dict(letter.headers())
        source = (int(headers["pyrallel.source.partition"]), int(headers["pyrallel.source.offset"]))
        original = poisoned[source]
        assert headers["pyrallel.source.topic"] == topic.encode()
        assert headers["pyrallel.attempts"] == b"3"
        assert b"ValueError" in headers["pyrallel.error"]
        assert f"poison record at offset {original.offset}".encode() in headers["pyrallel.error"]
        assert letter.key() == original.key
        assert letter.value() == original.value
        for name, value in HEADERS:
            assert headers[name] == value

    # Attempts of the poison key: each record tried 3 times, in offset order, one at a time
    # (later records of the key waited, then were tried after the earlier one gave up).
    trace = read_trace(tmp_path)
    poison_offsets = [(offset, ok) for offset, key, _, ok in trace if key == POISON_KEY.decode()]
    per_partition: dict[int, list[int]] = {}
    for (partition, offset), _ in sorted(poisoned.items()):
        per_partition.setdefault(partition, []).append(offset)
    for offsets in per_partition.values():
        tried = [o for o, _ in poison_offsets if o in set(offsets)]
        assert tried == [o for o in offsets for _ in range(3)]
    # Other keys kept flowing while the poison key was being retried.
    first_poison = min(start for _, key, start, _ in trace if key == POISON_KEY.decode())
    last_poison = max(start for _, key, start, _ in trace if key == POISON_KEY.decode())
    others_meanwhile = [
        1 for _, key, start, ok in trace if ok and first_poison < start < last_poison
    ]
    assert others_meanwhile

    # Dead-lettered records count as done: the committed offsets reach the end.
    ends: dict[int, int] = {}
    for r in produced:
        ends[r.partition] = max(ends.get(r.partition, 0), r.offset + 1)
    for partition, end in ends.items():
        assert committed_offset(kafka_broker, group, topic, partition) == end


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_stop_policy_raises_and_does_not_commit_the_failed_record(
    engine: str,
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = f"stop-{uuid.uuid4().hex[:8]}"
    consumer = ParallelConsumer(
        kafka_broker.consumer_config(group),
        topics=[topic],
        handler=stop_handler,
        engine=engine,
        ordering="unordered",
        retries=1,
        retry_backoff_s=0.001,
        on_failure="stop",
        commit_interval_s=0.1,
    )
    with pytest.raises(ProcessingError) as raised:
        consumer.run(timeout=120)
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.attempts) == (
        topic,
        0,
        STOP_OFFSET,
        2,
    )
    assert f"{topic}[0]@{STOP_OFFSET}" in str(error)
    assert "cannot handle this one" in str(error)
    assert "RuntimeError" in error.error
    position = committed_offset(kafka_broker, group, topic)
    assert position <= STOP_OFFSET
