"""What the process engine's workers run in the tracing test (test_tracing_process.py): a
`worker_init` that installs a TracerProvider exporting every span to a JSON-lines file of the
directory it is given, and handlers that write, per call, the values they got and the span
current in them. One file per worker process (`spans-<pid>.jsonl`, `calls-<pid>.jsonl`),
appended a whole line at a time."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from pyrallel_consumer import Record

FAILING_VALUE = b"7"  # the record whose every attempt raises
OUT_ENV = "PYRALLEL_TRACING_OUT"  # the directory the handlers write their calls to


class JsonLinesExporter(SpanExporter):
    """Appends each finished span, as one JSON object per line, to `path`."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self._path, "a") as out:
            for span in spans:
                out.write(json.dumps(span_fields(span)) + "\n")
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_fields(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None  # a finished span has one
    return {
        "name": span.name,
        "kind": span.kind.name,
        "ids": [context.trace_id, context.span_id],
        "parent": None if span.parent is None else [span.parent.trace_id, span.parent.span_id],
        "links": [[link.context.trace_id, link.context.span_id] for link in span.links],
        "attributes": dict(span.attributes or {}),
        "status": span.status.status_code.name,
        "events": [event.name for event in span.events],
    }


def install_tracing(directory: str) -> None:
    """worker_init: this worker's TracerProvider (SimpleSpanProcessor: each span is written
    when it ends, before its record is reported)."""
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(JsonLinesExporter(Path(directory) / f"spans-{os.getpid()}.jsonl"))
    )
    trace.set_tracer_provider(provider)


def _write_call(values: list[str]) -> None:
    context = trace.get_current_span().get_span_context()
    path = Path(os.environ[OUT_ENV]) / f"calls-{os.getpid()}.jsonl"
    with open(path, "a") as out:
        out.write(json.dumps({"values": values, "span": [context.trace_id, context.span_id]}))
        out.write("\n")


def handle(record: Record) -> None:
    assert record.value is not None
    _write_call([record.value.decode()])
    if record.value == FAILING_VALUE:
        raise ValueError("this record always fails")


def handle_batch(records: list[Record]) -> None:
    _write_call([record.value.decode() for record in records if record.value is not None])


def read_lines(directory: Path, prefix: str) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for path in sorted(directory.glob(f"{prefix}-*.jsonl")):
        lines += [json.loads(line) for line in path.read_text().splitlines() if line]
    return lines
