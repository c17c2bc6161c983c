"""Tracing through ParallelConsumer(tracing=True) and the real in-process engines (baseline,
async with coroutines and with threads), records and batches, over control_fakes' FakeClient:
a span per handler call, current in the thread or task that runs the handler, the producer's
context from each record's headers as its parent (a link per record for a batch), and a failed
attempt followed by its retry. The process engine is covered on the broker
(tests/integration/test_tracing_process.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from control_fakes import TOPIC, FakeClient, FakeClock, Script
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from tracing_support import HeaderMessage, attempt_of, link_ids, parent_ids, producer_context, spans

import pyrallel_consumer.consumer as consumer_module
from pyrallel_consumer import ParallelConsumer, Record

__all__ = ["spans"]  # the fixture, used by name

RECORDS = 12
FAILS_ONCE = 5  # the offset whose first handler call raises


class Calls:
    """What the handler saw: per call, the offsets it got and the span current in it. The
    first call that includes FAILS_ONCE raises."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[list[int], trace.SpanContext]] = []
        self.failed = False

    def __call__(self, work: Record | list[Record]) -> None:
        offsets = [r.offset for r in work] if isinstance(work, list) else [work.offset]
        with self.lock:
            self.seen.append((offsets, trace.get_current_span().get_span_context()))
            if FAILS_ONCE in offsets and not self.failed:
                self.failed = True
                raise ConnectionError("database away")


def sync_handler(calls: Calls) -> Callable[[Any], None]:
    def handle(work: Any) -> None:
        calls(work)

    return handle


def async_handler(calls: Calls) -> Callable[[Any], Any]:
    async def handle(work: Any) -> None:
        await asyncio.sleep(0)
        calls(work)

    return handle


def run_traced(
    monkeypatch: pytest.MonkeyPatch, handler: Callable[[Any], Any], **options: Any
) -> int:
    """Run a traced consumer over RECORDS records of partition 0 (3 keys, each record with its
    producer context), through the fake client, until every record completed."""
    client = FakeClient(FakeClock(), Script())
    client.log[0] = [
        HeaderMessage(
            TOPIC, 0, n, b"k%d" % (n % 3), b"v", [("traceparent", producer_context(n + 1)[0])]
        )
        for n in range(RECORDS)
    ]
    client.rebalance("assign", 0)
    real_loop = consumer_module.ControlLoop

    def with_fake_client(*args: Any, **kwargs: Any) -> Any:
        kwargs["client_factory"] = client.factory
        return real_loop(*args, **kwargs)

    monkeypatch.setattr(consumer_module, "ControlLoop", with_fake_client)
    consumer = ParallelConsumer(
        {"bootstrap.servers": "fake:9092", "group.id": "orders-app"},
        topics=[TOPIC],
        handler=handler,
        tracing=True,
        retries=2,
        retry_backoff_s=0.0,
        **options,
    )
    return consumer.run(max_records=RECORDS, timeout=120.0)


def by_offset(finished: tuple[ReadableSpan, ...]) -> dict[int, list[ReadableSpan]]:
    found: dict[int, list[ReadableSpan]] = {}
    for span in finished:
        offset = (span.attributes or {})["messaging.kafka.offset"]
        assert isinstance(offset, int)
        found.setdefault(offset, []).append(span)
    return found


RECORD_CASES = [
    ("baseline", sync_handler),
    ("async", async_handler),
    ("async", sync_handler),  # threads
]


@pytest.mark.parametrize(
    ("engine", "make_handler"), RECORD_CASES, ids=["baseline", "async-coroutines", "async-threads"]
)
def test_a_span_per_record_call_parented_by_the_producer(
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
    engine: str,
    make_handler: Callable[[Calls], Callable[[Any], Any]],
) -> None:
    calls = Calls()
    assert run_traced(monkeypatch, make_handler(calls), engine=engine) == RECORDS
    finished = spans.get_finished_spans()
    spans_of = by_offset(finished)
    assert sorted(spans_of) == list(range(RECORDS))
    for offset, record_spans in spans_of.items():
        assert [attempt_of(s) for s in record_spans] == ([1, 2] if offset == FAILS_ONCE else [1])
        for span in record_spans:
            assert parent_ids(span) == producer_context(offset + 1)[1]
    failed, retried = spans_of[FAILS_ONCE]
    assert failed.status.status_code is StatusCode.ERROR
    assert (failed.attributes or {})["error.type"] == "ConnectionError"
    assert [event.name for event in retried.events] == ["retry"]
    assert retried.status.status_code is StatusCode.UNSET
    # Each call ran inside its own span, in whichever thread or task the engine used.
    assert sorted(str(context) for _, context in calls.seen) == sorted(
        str(span.get_span_context()) for span in finished
    )


BATCH_CASES = [
    ("baseline", sync_handler),
    ("async", async_handler),
    ("async", sync_handler),
]


@pytest.mark.parametrize(
    ("engine", "make_handler"), BATCH_CASES, ids=["baseline", "async-coroutines", "async-threads"]
)
def test_a_span_per_batch_call_linked_to_its_records(
    monkeypatch: pytest.MonkeyPatch,
    spans: InMemorySpanExporter,
    engine: str,
    make_handler: Callable[[Calls], Callable[[Any], Any]],
) -> None:
    calls = Calls()
    assert run_traced(monkeypatch, make_handler(calls), engine=engine, batch_size=4) == RECORDS
    finished = spans.get_finished_spans()
    assert len(finished) == len(calls.seen)
    span_of = {str(span.get_span_context()): span for span in finished}
    linked_ok: list[tuple[int, int]] = []
    for offsets, context in calls.seen:
        span = span_of[str(context)]  # the call ran inside this span
        assert span.parent is None
        assert (span.attributes or {})["messaging.batch.message_count"] == len(offsets)
        assert link_ids(span) == [producer_context(n + 1)[1] for n in offsets]
        if span.status.status_code is not StatusCode.ERROR:
            linked_ok += link_ids(span)
    assert sorted(linked_ok) == sorted(producer_context(n + 1)[1] for n in range(RECORDS))
    errors = [s for s in finished if s.status.status_code is StatusCode.ERROR]
    assert len(errors) == 1
    retried = [s for s in finished if attempt_of(s) == 2]
    assert len(retried) == 1 and [e.name for e in retried[0].events] == ["retry"]
    assert link_ids(retried[0]) == link_ids(errors[0])  # the same batch, called again
