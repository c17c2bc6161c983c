"""The tracing wrapper alone (pyrallel_consumer/tracing.py): one CONSUMER span per handler
call with the messaging attributes, the producer's context as parent (a link per record in
batch mode), failures as the status, retries as events; and the `tracing` option's checks."""

from __future__ import annotations

import asyncio
import inspect
import pickle
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tracing_support import attempt_of, link_ids, parent_ids, producer_context, spans

from pyrallel_consumer.config import build_config
from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record
from pyrallel_consumer.tracing import TracedHandler, traced_handler

__all__ = ["spans"]  # the fixture, used by name

KAFKA = {"bootstrap.servers": "127.0.0.1:1", "group.id": "orders-app"}


def traced(handler: Any, *, retries: int = 3, batch: bool = False, cap: int = 100) -> Any:
    wrapper = TracedHandler(handler, "orders-app", retries, batch, cap)
    return wrapper.call_async if inspect.iscoroutinefunction(handler) else wrapper.call


def record(offset: int = 7, *, key: bytes | None = b"k1", headers: Any = None) -> Record:
    return Record("orders", 2, offset, key, b"secret value", headers)


class Seen:
    """What a handler saw of the current span."""

    def __init__(self) -> None:
        self.contexts: list[trace.SpanContext] = []

    def __call__(self, work: object) -> str:
        self.contexts.append(trace.get_current_span().get_span_context())
        return "done"


def test_one_consumer_span_per_call_with_the_messaging_attributes(
    spans: InMemorySpanExporter,
) -> None:
    seen = Seen()
    assert traced(seen)(record()) == "done"
    (span,) = spans.get_finished_spans()
    assert span.name == "process orders"
    assert span.kind is SpanKind.CONSUMER
    assert dict(span.attributes or {}) == {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": "orders",
        "messaging.destination.partition.id": "2",
        "messaging.consumer.group.name": "orders-app",
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "k1",
        "pyrallel.attempt": 1,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert seen.contexts == [span.get_span_context()]  # current inside the handler


def test_the_producer_context_in_the_headers_is_the_parent(spans: InMemorySpanExporter) -> None:
    header, ids = producer_context(1)
    traced(Seen())(record(headers=[("other", b"x"), ("traceparent", header)]))
    (span,) = spans.get_finished_spans()
    assert parent_ids(span) == ids
    assert span.context is not None and span.context.trace_id == ids[0]


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("traceparent", b"00-not-a-trace-context-01")],
        [("traceparent", b"\xff\xfe")],  # not UTF-8: skipped
        [("traceparent", None)],
        [("TraceParent", producer_context(1)[0])],  # Kafka header names are case-sensitive
    ],
    ids=["none", "empty", "malformed", "undecodable", "null", "other-case"],
)
def test_without_a_valid_producer_context_the_span_starts_a_trace(
    spans: InMemorySpanExporter, headers: Any
) -> None:
    traced(Seen())(record(headers=headers))
    (span,) = spans.get_finished_spans()
    assert span.parent is None


def test_an_undecodable_header_is_skipped_for_a_valid_one(spans: InMemorySpanExporter) -> None:
    header, ids = producer_context(2)
    traced(Seen())(record(headers=[("traceparent", b"\xff"), ("traceparent", header)]))
    (span,) = spans.get_finished_spans()
    assert parent_ids(span) == ids


@pytest.mark.parametrize("key", [None, b"\xff\x00binary"], ids=["null", "not-utf8"])
def test_a_key_without_a_string_form_is_left_out(
    spans: InMemorySpanExporter, key: bytes | None
) -> None:
    traced(Seen())(record(key=key))
    (span,) = spans.get_finished_spans()
    assert "messaging.kafka.message.key" not in (span.attributes or {})
    assert b"secret value" not in repr(dict(span.attributes or {})).encode()


def test_an_async_handler_runs_inside_its_span(spans: InMemorySpanExporter) -> None:
    seen = Seen()

    async def handle(work: Record) -> str:
        await asyncio.sleep(0)
        return seen(work)

    wrapped = traced(handle)
    assert inspect.iscoroutinefunction(wrapped)
    header, ids = producer_context(3)
    assert asyncio.run(wrapped(record(headers=[("traceparent", header)]))) == "done"
    (span,) = spans.get_finished_spans()
    assert parent_ids(span) == ids
    assert seen.contexts == [span.get_span_context()]


def test_a_batch_is_one_span_linked_to_each_record_context(spans: InMemorySpanExporter) -> None:
    (h1, ids1), (h2, ids2) = producer_context(1), producer_context(2)
    batch = [
        record(0, headers=[("traceparent", h1)]),
        record(1),
        record(2, headers=[("traceparent", b"garbage")]),
        record(3, headers=[("traceparent", h2)]),
    ]
    seen = Seen()
    traced(seen, batch=True)(batch)
    (span,) = spans.get_finished_spans()
    assert span.parent is None
    assert link_ids(span) == [ids1, ids2]
    assert span.name == "process orders"
    attributes = dict(span.attributes or {})
    assert attributes["messaging.batch.message_count"] == 4
    assert attributes["messaging.destination.name"] == "orders"
    assert attributes["messaging.destination.partition.id"] == "2"
    assert "messaging.kafka.offset" not in attributes
    assert seen.contexts == [span.get_span_context()]


def test_a_batch_of_several_topics_names_none(spans: InMemorySpanExporter) -> None:
    batch = [record(0), Record("payments", 0, 5, None, b"v")]
    traced(Seen(), batch=True)(batch)
    (span,) = spans.get_finished_spans()
    assert span.name == "process"
    attributes = dict(span.attributes or {})
    assert "messaging.destination.name" not in attributes
    assert "messaging.destination.partition.id" not in attributes


class Failing:
    """Raises `errors[n]` on call n (0-based) while there is one, then returns."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, work: object) -> None:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)


def call_until_done(handler: Any, work: object, attempts: int) -> None:
    """An engine's attempts: the same work object, up to `attempts` calls until one returns."""
    for _ in range(attempts):
        try:
            handler(work)
        except BaseException:  # the engine's failed attempt
            continue
        return


def test_retries_are_events_and_failures_the_status(spans: InMemorySpanExporter) -> None:
    handler = traced(Failing(ValueError("bad row"), TimeoutError("slow db")), retries=3)
    call_until_done(handler, record(), attempts=4)
    first, second, third = spans.get_finished_spans()
    assert [attempt_of(span) for span in (first, second, third)] == [1, 2, 3]
    for span, kind in ((first, "ValueError"), (second, "TimeoutError")):
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == kind
        assert [event.name for event in span.events][-1] == "exception"
    assert third.status.status_code is StatusCode.UNSET
    assert "error.type" not in (third.attributes or {})
    retry_events = [(e.name, dict(e.attributes or {})) for e in third.events]
    assert retry_events == [("retry", {"pyrallel.attempt": 3, "error.type": "TimeoutError"})]
    assert handler.__self__._retrying == {}  # forgotten once it succeeded


class CustomError(Exception):
    pass


def test_retries_exhausted_forget_the_record(spans: InMemorySpanExporter) -> None:
    handler = traced(Failing(CustomError("1"), CustomError("2"), CustomError("3")), retries=1)
    work = record()
    call_until_done(handler, work, attempts=2)  # retries=1: two attempts, both failed
    assert handler.__self__._retrying == {}
    kinds = [(s.attributes or {})["error.type"] for s in spans.get_finished_spans()]
    assert kinds == [f"{__name__}.CustomError"] * 2
    spans.clear()
    call_until_done(handler, work, attempts=1)  # the same object again: a new first attempt
    (span,) = spans.get_finished_spans()
    assert attempt_of(span) == 1


@pytest.mark.parametrize("stop", [SystemExit(3), KeyboardInterrupt()], ids=["exit", "interrupt"])
def test_a_stop_exception_ends_the_retries(
    spans: InMemorySpanExporter, stop: BaseException
) -> None:
    handler = traced(Failing(ValueError("once"), stop), retries=5)
    work = record()
    with pytest.raises(ValueError):
        handler(work)
    with pytest.raises(type(stop)):
        handler(work)
    assert handler.__self__._retrying == {}  # no attempt follows a stop
    _, stopped = spans.get_finished_spans()
    assert attempt_of(stopped) == 2
    assert stopped.status.status_code is StatusCode.ERROR
    assert (stopped.attributes or {})["error.type"] == type(stop).__name__


def test_a_record_delivered_again_starts_at_attempt_one(spans: InMemorySpanExporter) -> None:
    handler = traced(Failing(ValueError("abandoned")), retries=3)
    with pytest.raises(ValueError):
        handler(record())  # then abandoned during its backoff (a revoke, say)
    handler(record())  # the same offset, fetched again: a new object
    assert [attempt_of(span) for span in spans.get_finished_spans()] == [1, 1]


def test_failures_left_behind_are_bounded(spans: InMemorySpanExporter) -> None:
    handler = traced(Failing(*(ValueError(str(n)) for n in range(5))), retries=3, cap=2)
    kept = [record(offset) for offset in range(5)]
    for work in kept:
        with pytest.raises(ValueError):
            handler(work)  # each abandoned after its first attempt
    assert [entry.work for entry in handler.__self__._retrying.values()] == kept[3:]


def test_the_wrapper_pickles_for_worker_processes(spans: InMemorySpanExporter) -> None:
    config = build_config(KAFKA, topics=["orders"], engine="process", tracing=True, retries=2)
    handler = pickle.loads(pickle.dumps(traced_handler(Failing(ValueError("x")), config)))
    work = record()
    with pytest.raises(ValueError):
        handler(work)
    handler(work)
    assert [attempt_of(span) for span in spans.get_finished_spans()] == [1, 2]

    unpickled = pickle.loads(pickle.dumps(traced_handler(handle_async, config)))
    assert inspect.iscoroutinefunction(unpickled)  # workers pick their runner by this
    asyncio.run(unpickled(record(8)))
    assert attempt_of(spans.get_finished_spans()[-1]) == 1


async def handle_async(work: Record) -> None:
    return None


def test_the_option_is_checked_when_the_consumer_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(TypeError, match="tracing must be True or False"):
        build_config(KAFKA, topics=["t"], tracing="yes")
    assert build_config(KAFKA, topics=["t"], tracing=True).tracing is True
    monkeypatch.setitem(sys.modules, "opentelemetry.trace", None)  # as if not installed
    with pytest.raises(ValueError, match=r"pip install 'pyrallel-consumer\[tracing\]'"):
        build_config(KAFKA, topics=["t"], tracing=True)
    assert build_config(KAFKA, topics=["t"]).tracing is False  # off: nothing imported


def test_off_nothing_is_wrapped_or_imported() -> None:
    script = textwrap.dedent(
        """
        import sys
        from pyrallel_consumer import ParallelConsumer
        def handle(record): pass
        kafka = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}
        off = ParallelConsumer(kafka, topics=["t"], handler=handle, engine="baseline")
        assert off._loop.engine.handler is handle, off._loop.engine.handler
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        on = ParallelConsumer(kafka, topics=["t"], handler=handle, tracing=True)
        assert on._loop.engine.handler.__self__.handler is handle
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_outputs_carry_the_span_context_to_the_output_topic(spans: InMemorySpanExporter) -> None:
    def handler(work: Record) -> list[Output]:
        return [
            Output("out", b"1", key=b"k1"),
            Output("out", b"2", headers={"traceparent": b"mine", "x": b"y"}),
        ]

    wrapper = TracedHandler(handler, "orders-app", 3, False, 100, outputs=True)
    first, second = wrapper.call(record())
    (span,) = spans.get_finished_spans()
    assert span.context is not None
    trace_id = f"{span.context.trace_id:032x}"
    span_id = f"{span.context.span_id:016x}"
    ((name, value),) = first.headers or ()
    assert name == "traceparent" and value.startswith(f"00-{trace_id}-{span_id}-".encode())
    assert second.headers == [("traceparent", b"mine"), ("x", b"y")]  # the handler's own kept


def test_outputs_of_a_generator_are_taken_inside_the_span(spans: InMemorySpanExporter) -> None:
    async def handler(work: Record) -> Any:
        return (Output("out", b"%d" % n) for n in range(2))

    wrapper = TracedHandler(handler, "orders-app", 3, False, 100, outputs=True)
    outputs = asyncio.run(wrapper.call_async(record()))
    assert [dict(o.headers or ())["traceparent"][:3] for o in outputs] == [b"00-", b"00-"]
