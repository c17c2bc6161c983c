"""Asynchronous handlers an engine cannot see as `async def` functions are never dropped
unawaited with their records committed as done (the trial found each of these completing every
record while its body ran zero times):

- an object whose `__call__` is `async def` is an async handler everywhere: awaited by the
  engines that run coroutines, refused up front by the baseline engine, like an `async def`;
- an async generator function is refused up front on every engine (nothing would iterate it);
- a plain function that returns a coroutine or another awaitable (a lambda or a plain
  decorator around an `async def`) fails each attempt with HandlerReturnError naming the fix,
  with outputs on or off, per record and in batch mode; the coroutine is closed, so Python
  warns of nothing left unawaited; and ProcessingError's advice then names the handler, not
  the failure policies.
"""

from __future__ import annotations

import asyncio
import inspect
import warnings
from typing import Any

import outputs_handlers as h
import pytest
from engine_support import collect, engine_config, make_items
from test_engine_outputs import started

from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.errors import ProcessingError
from pyrallel_consumer.output import no_outputs
from pyrallel_consumer.tracing import traced_handler
from pyrallel_consumer.work import Outcome

KAFKA = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}


@pytest.mark.parametrize("kind", ["async", "process"])
def test_an_object_with_an_async_call_is_awaited(kind: str, engines: list[Engine]) -> None:
    engine = started(kind, h.AsyncCall(), engines, outputs=True, retries=0)
    items = make_items(4, keys=2)
    engine.submit(items)
    reports = collect(engine, 4)
    for item in items:
        report = reports[item.id]
        assert report.outcome is Outcome.SUCCEEDED, report.error
        assert report.outputs == [h.one(item.record)]


@pytest.mark.parametrize(
    "handler", [h.AsyncCall(), h.one_async], ids=["async-call-object", "async-def"]
)
def test_the_baseline_engine_refuses_both_kinds_of_async_handler(handler: Any) -> None:
    with pytest.raises(ValueError, match="handler is an async function but engine='baseline'"):
        ParallelConsumer(KAFKA, topics=["t"], handler=handler, engine="baseline")


@pytest.mark.parametrize("engine", ["baseline", "async", "process"])
def test_an_async_generator_handler_is_refused_on_every_engine(engine: str) -> None:
    with pytest.raises(ValueError, match=r"handler is an async generator .*`return` instead"):
        ParallelConsumer(KAFKA, topics=["t"], handler=h.yielding, engine=engine)


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
@pytest.mark.parametrize("outputs", [False, True], ids=["outputs-off", "outputs-on"])
@pytest.mark.parametrize("batch", [False, True], ids=["record", "batch"])
def test_a_coroutine_returned_by_a_plain_handler_fails_the_attempt_naming_the_fix(
    kind: str, outputs: bool, batch: bool, engines: list[Engine]
) -> None:
    handler = h.hidden_async_batch if batch else h.hidden_async
    options: dict[str, Any] = {"batch_size": 3, "max_in_flight": 12} if batch else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a coroutine left unawaited would warn
        engine = started(kind, handler, engines, outputs=outputs, retries=1, **options)
        engine.submit(make_items(6, keys=6, ordering="unordered"))
        reports = collect(engine, 6)
    for report in reports.values():
        assert report.outcome is Outcome.FAILED
        assert report.error is not None
        assert "pyrallel_consumer.output.HandlerReturnError: the handler returned" in report.error
        assert "Give the `async def` function itself" in report.error


def test_processing_error_names_the_handler_not_the_failure_policies() -> None:
    error = (
        "Traceback (most recent call last):\n  ...\n"
        "pyrallel_consumer.output.HandlerReturnError: the handler returned coroutine ..."
    )
    message = str(ProcessingError("t", 0, 7, 4, error))
    assert "the handler's return value, not the record, is at fault" in message
    assert "dlq_topic" not in message


def test_values_that_are_not_awaitable_are_still_ignored_with_outputs_off() -> None:
    for value in (1, "text", b"bytes", [1, 2], {"a": 1}, object()):
        assert no_outputs(value) is None


def test_the_tracing_wrapper_awaits_an_object_with_an_async_call() -> None:
    """The wrappers (tracing here, metrics alike) decide with the engines' test: a sync wrapper
    around it would hand the engine a coroutine to drop."""
    wrapped = traced_handler(h.AsyncCall(), engine_config("async"))
    assert inspect.iscoroutinefunction(wrapped)
    record = make_items(1, keys=1)[0].record
    assert asyncio.run(wrapped(record)) == h.one(record)
