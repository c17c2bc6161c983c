"""Helpers of the tracing tests (test_tracing*.py): spans kept in memory, producer contexts.

- `spans` fixture: a TracerProvider of opentelemetry-sdk exporting to an InMemorySpanExporter,
  installed as the global provider for one test only (the API lets a process set its provider
  once; the fixture swaps the module's global back after the test, as OpenTelemetry's own
  test utilities do).
- `producer_context(n)`: a W3C `traceparent` header value with trace and span ids made of `n`,
  and the (trace_id, span_id) a consumer span must take as its parent or link.
- `HeaderMessage`: control_fakes' fake record with headers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fake_messages import FakeMessage
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pyrallel_consumer.record import Headers


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", provider)
    yield exporter
    provider.shutdown()


def producer_context(n: int) -> tuple[bytes, tuple[int, int]]:
    """The `traceparent` value (sampled) of a producer span numbered `n` >= 1, and its ids."""
    trace_id, span_id = 0xABC0000000000000 + n, 0x1000 + n
    return f"00-{trace_id:032x}-{span_id:016x}-01".encode(), (trace_id, span_id)


def parent_ids(span: ReadableSpan) -> tuple[int, int] | None:
    return None if span.parent is None else (span.parent.trace_id, span.parent.span_id)


def link_ids(span: ReadableSpan) -> list[tuple[int, int]]:
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def attempt_of(span: ReadableSpan) -> object:
    return (span.attributes or {}).get("pyrallel.attempt")


@dataclass
class HeaderMessage(FakeMessage):
    """A fake fetched record that carries headers."""

    _headers: Headers | None = None

    def headers(self) -> Headers | None:  # type: ignore[override]
        return self._headers
