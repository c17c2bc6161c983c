"""OpenTelemetry spans around handler calls (the `tracing` extra:
`pip install 'pyrallel-consumer[tracing]'`, which brings opentelemetry-api).

With `ParallelConsumer(..., tracing=True)` the handler is wrapped (consumer.py) before the
engine is built, so each handler call, on whichever thread, event-loop task or worker process
the engine runs it, is one span of kind CONSUMER, current while the handler runs (spans the
handler starts are its children):

- **one record**: span "process <topic>", its parent the producer's context extracted from the
  record's headers with the globally configured propagator (W3C `traceparent` by default), so
  the handler's work is part of the producer's trace. A parent rather than a link: one record
  is processed by one call, and the messaging conventions let a single-message process span
  take the creation context as its parent; a trace backend then shows producer and consumer
  in one trace, which is what a user following a record looks for. Without a valid context in
  the headers the span starts a trace of its own (never a child of whatever is current in the
  engine's thread).
- **a batch** (batch mode): one span per call, no parent, a link to the context of each record
  that carries a valid one, `messaging.batch.message_count`; the destination and partition
  attributes only when every record of the batch shares them.

Attributes follow OpenTelemetry's messaging semantic conventions v1.27.0 (status:
development; the names used here are unchanged in the later releases up to the one the tests'
opentelemetry-sdk brings): `messaging.system`="kafka", `messaging.operation.name` and
`messaging.operation.type`="process", `messaging.destination.name` (topic),
`messaging.destination.partition.id` (partition, a string), `messaging.consumer.group.name`,
`messaging.kafka.offset`, `messaging.kafka.message.key` (only a key that is valid UTF-8; the
value is never recorded), plus `pyrallel.attempt` (1-based handler call of this record or
batch).

**Failures and retries.** A call that raises (anything, SystemExit included) ends its span
with status ERROR, the exception recorded as an event and `error.type` (the exception's type,
qualified by its module unless built in); the exception propagates unchanged. Engines call the
handler once per attempt, with the same record object (or batch list) every time
(engines/attempts.py), and the wrapper is not told the attempt number, so it remembers the
failures it saw per work object, keyed by identity while it holds that object: the span of
attempt n > 1 gets a `retry` event (`pyrallel.attempt`, the previous attempt's `error.type`).
An entry exists only while a record is being retried: it is removed when a call succeeds, on
SystemExit/KeyboardInterrupt (no retry follows), and once `retries + 1` attempts failed; one
left behind by a record abandoned during its backoff (revoke, shutdown) is evicted once
`max_in_flight` newer ones exist, so the table stays bounded. A record delivered again (after
a rebalance, a restart) is a new object and starts at attempt 1. Batch pieces after a split
are new lists: attempt 1 again. What the wrapper cannot see: a worker process that dies
during a call (process engine) ends no span, and the engine's next attempt of that record, in
another worker, counts as attempt 1 there.

**Process engine.** The wrapper is pickled to the workers with the handler (a module-level
class holding plain settings); each worker looks its tracer up in the global TracerProvider
at its first call. The parent's provider does not cross processes: install one (with its
exporter) in `worker_init`, as the tests do; without one, worker spans go to the API's no-op
provider.

Threads: one wrapper is called from every runner thread (or task) of an engine at once. The
retry table is read without a lock (a record's attempts run one after another, so only the
thread running a record's attempt reads or writes that record's entry); inserts and removals
take `_lock`, on the failure path only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
    from opentelemetry.context import Context
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "pyrallel_consumer.tracing needs opentelemetry-api: "
        "pip install 'pyrallel-consumer[tracing]'"
    ) from exc

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.attempts import STOP_EXCEPTIONS
from pyrallel_consumer.engines.base import is_coroutine_handler
from pyrallel_consumer.output import Output, outputs_of
from pyrallel_consumer.record import Headers, Record

TRACER_NAME = "pyrallel_consumer"
# The semantic conventions the attributes follow (the module doc), told to the SDK and exporters.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.27.0"
ATTEMPT = "pyrallel.attempt"
ERROR_TYPE = "error.type"
_EMPTY = Context()  # the parent of a span without a producer context: none


class _HeaderGetter(Getter[Headers]):
    """Reads a propagator's fields from Kafka record headers: (name, bytes or None) pairs,
    names compared exactly (Kafka header names are case-sensitive); values decoded as UTF-8,
    undecodable and null ones skipped."""

    def get(self, carrier: Headers, key: str) -> list[str] | None:
        found = []
        for name, value in carrier:
            if name == key and value is not None:
                try:
                    found.append(value.decode())
                except UnicodeDecodeError:
                    continue
        return found or None

    def keys(self, carrier: Headers) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _HeaderGetter()


def record_context(headers: Headers | None) -> Context:
    """The context the global propagator extracts from `headers` (empty without headers)."""
    return _EMPTY if not headers else propagate.extract(headers, context=_EMPTY, getter=_GETTER)


def error_type(exc: BaseException) -> str:
    """The `error.type` of `exc`: its qualified type name, module first unless built in."""
    kind = type(exc)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


class _Failed(NamedTuple):
    """What the wrapper remembers of a record (or batch) being retried."""

    work: object  # the record or batch list itself: held, so its id is not reused meanwhile
    attempts: int  # failed calls so far
    error_type: str  # the last one's


class TracedHandler:
    """A handler with one span per call (see the module doc). `call` is the handler to give a
    sync engine, `call_async` the one for an `async def` handler; both pickle with the object
    (settings only: the tracer, the lock and the retry table are made again in each process).

    `handler`: the user's handler; `group`: the consumer group; `retries`: the retries after a
    failed attempt (config.retry.retries); `batch`: the handler takes lists of records;
    `max_retrying`: how many records' failures are remembered at most (max_in_flight);
    `outputs`: the handler returns outputs (outputs=True), which get the span's context in
    their headers (the global propagator's: W3C traceparent by default), so the consumers of
    the output topic continue the trace; a header of that name the handler set is kept."""

    def __init__(
        self,
        handler: Callable[[Any], Any],
        group: str,
        retries: int,
        batch: bool,
        max_retrying: int,
        outputs: bool = False,
    ) -> None:
        self.handler = handler
        self._group = group
        self._retries = retries
        self._batch = batch
        self._max_retrying = max_retrying
        self._outputs = outputs
        self._fresh()

    def _fresh(self) -> None:
        self._tracer: trace.Tracer | None = None  # looked up at the first call, in its process
        self._lock = threading.Lock()  # guards inserts into and removals from _retrying
        self._retrying: dict[int, _Failed] = {}  # id(work) -> its failures, oldest first

    def __getstate__(self) -> tuple[object, ...]:
        return (
            self.handler,
            self._group,
            self._retries,
            self._batch,
            self._max_retrying,
            self._outputs,
        )

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        (
            self.handler,
            self._group,
            self._retries,
            self._batch,
            self._max_retrying,
            self._outputs,
        ) = state
        self._fresh()

    # ---- the two handlers ------------------------------------------------------------------

    def call(self, work: Any) -> Any:
        """Call the handler with `work` (a Record, or a list of them in batch mode) inside its
        span. Returns what the handler returns; raises what it raises."""
        span, previous = self._start(work)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = self.handler(work)
            if self._outputs:
                result = with_context(result)
        except BaseException as exc:
            self._failed(span, work, previous, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()
        if previous is not None:
            self._forget(work)
        return result

    async def call_async(self, work: Any) -> Any:
        """`call` for an `async def` handler: the span is current in the awaiting task."""
        span, previous = self._start(work)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            result = await self.handler(work)
            if self._outputs:
                result = with_context(result)
        except BaseException as exc:
            self._failed(span, work, previous, exc)
            raise
        finally:
            otel_context.detach(token)
            span.end()
        if previous is not None:
            self._forget(work)
        return result

    # ---- spans -----------------------------------------------------------------------------

    def _start(self, work: Any) -> tuple[trace.Span, _Failed | None]:
        """The span of this call, started, and the failures of the earlier attempts (None on a
        first attempt)."""
        tracer = self._tracer
        if tracer is None:
            tracer = self._tracer = trace.get_tracer(TRACER_NAME, schema_url=SCHEMA_URL)
        # No lookup while nothing is being retried: the common case pays one truth test.
        previous = self._retrying.get(id(work)) if self._retrying else None
        attempt = 1 if previous is None else previous.attempts + 1
        if self._batch:
            span = self._batch_span(tracer, work, attempt)
        else:
            span = self._record_span(tracer, work, attempt)
        if previous is not None:
            span.add_event("retry", {ATTEMPT: attempt, ERROR_TYPE: previous.error_type})
        return span, previous

    def _record_span(self, tracer: trace.Tracer, record: Record, attempt: int) -> trace.Span:
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.consumer.group.name": self._group,
            "messaging.kafka.offset": record.offset,
            ATTEMPT: attempt,
        }
        if record.key is not None:
            # try/except rather than contextlib.suppress: no context manager per record.
            try:  # noqa: SIM105
                attributes["messaging.kafka.message.key"] = record.key.decode()
            except UnicodeDecodeError:
                pass  # no canonical string form: the conventions say leave it out
        return tracer.start_span(
            f"process {record.topic}",
            context=record_context(record.headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )

    def _batch_span(
        self, tracer: trace.Tracer, records: Sequence[Record], attempt: int
    ) -> trace.Span:
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.name": "process",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self._group,
            "messaging.batch.message_count": len(records),
            ATTEMPT: attempt,
        }
        links = []
        for record in records:
            if record.headers:
                linked = trace.get_current_span(record_context(record.headers)).get_span_context()
                if linked.is_valid:
                    links.append(Link(linked))
        name = "process"
        topics = {record.topic for record in records}
        if len(topics) == 1:
            topic = next(iter(topics))
            name = f"process {topic}"
            attributes["messaging.destination.name"] = topic
            partitions = {record.partition for record in records}
            if len(partitions) == 1:
                attributes["messaging.destination.partition.id"] = str(next(iter(partitions)))
        return tracer.start_span(
            name, context=_EMPTY, kind=SpanKind.CONSUMER, attributes=attributes, links=links
        )

    # ---- the retry table (failure path only) -----------------------------------------------

    def _failed(
        self, span: trace.Span, work: object, previous: _Failed | None, exc: BaseException
    ) -> None:
        kind = error_type(exc)
        span.record_exception(exc)
        span.set_attribute(ERROR_TYPE, kind)
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        attempts = 1 if previous is None else previous.attempts + 1
        with self._lock:
            if isinstance(exc, STOP_EXCEPTIONS) or attempts > self._retries:
                self._retrying.pop(id(work), None)  # no attempt follows
                return
            self._retrying[id(work)] = _Failed(work, attempts, kind)
            if len(self._retrying) > self._max_retrying:
                # More entries than records in flight: some were left by records abandoned
                # during their backoff. Drop the oldest, the likeliest of them (were it a live
                # one, its next span would say attempt 1: a wrong number, never a leak).
                del self._retrying[next(iter(self._retrying))]

    def _forget(self, work: object) -> None:
        with self._lock:
            self._retrying.pop(id(work), None)


def with_context(returned: object) -> list[Output] | None:
    """A handler's outputs (output.outputs_of: TypeError for anything else), each with the
    current context in its headers, unless it has a header of the same name already."""
    outputs = outputs_of(returned)
    if outputs:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        for output in outputs:
            have = {name for name, _ in output.headers or ()}
            added = [(name, value.encode()) for name, value in carrier.items() if name not in have]
            if added:
                output.headers = [*(output.headers or ()), *added]
    return outputs


def traced_handler(handler: Callable[..., Any], config: ConsumerConfig) -> Callable[..., Any]:
    """`handler` with a span per call, sync or `async def` alike (a batch handler in batch
    mode); picklable when `handler` is (the process engine sends it to its workers)."""
    traced = TracedHandler(
        handler,
        group=config.group_id,
        retries=config.retry.retries,
        batch=config.batch_size is not None,
        max_retrying=config.max_in_flight,
        outputs=config.outputs,
    )
    return traced.call_async if is_coroutine_handler(handler) else traced.call
