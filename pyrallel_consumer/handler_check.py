"""What the handler given to a ParallelConsumer must be, checked when the consumer is built:
callable; not an async generator; an `async def` function (or an object whose `__call__` is
one) only for engines that run coroutines; and, when its first
parameter's annotation says what it takes, a record handler without `batch_size` and a
handler of a list of records with it.

Why the annotation: a record handler given `batch_size` gets a list and fails on its first
attribute (`'list' object has no attribute 'value'`), once per attempt and then through the
bisection, far from the cause. An unannotated handler, or one whose annotations cannot be
resolved here (names imported only for type checkers), is not checked.
"""

from __future__ import annotations

import collections.abc
import inspect
from typing import get_args, get_origin

from pyrallel_consumer.engines.base import is_async_generator_handler, is_coroutine_handler
from pyrallel_consumer.engines.registry import engine_spec, engines_where
from pyrallel_consumer.record import Record

# Annotations of a batch handler's parameter: list[Record], Sequence[Record] and the like.
_BATCH_ORIGINS = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)


def validate_handler(handler: object, engine: str, batch_size: int | None) -> None:
    """Raise TypeError when `handler` is not callable, ValueError when it does not fit
    `engine` or `batch_size` (module doc), naming the fix."""
    if not callable(handler):
        raise TypeError(f"handler must be callable, got {type(handler).__name__}")
    if is_async_generator_handler(handler):
        raise ValueError(
            "handler is an async generator (an `async def` with `yield`): calling it runs "
            "nothing until something iterates it, and no engine does; `return` instead (with "
            "outputs=True, return the list of Outputs)"
        )
    if is_coroutine_handler(handler) and not engine_spec(engine).accepts_coroutines:
        takes = engines_where(lambda spec: spec.accepts_coroutines)
        raise ValueError(
            f"handler is an async function but engine={engine!r} runs plain functions; "
            f"use engine={takes} for async handlers"
        )
    shape = _annotated_input(handler)
    if shape == "record" and batch_size is not None:
        raise ValueError(
            f"batch_size={batch_size} hands the handler a list of records, but its first "
            "parameter is annotated Record: take list[Record] (or Sequence[Record]), or drop "
            "batch_size for one record per call"
        )
    if shape == "batch" and batch_size is None:
        raise ValueError(
            "the handler's first parameter is annotated as a list of records, but without "
            "batch_size it gets one Record per call: set batch_size=N, or take a Record"
        )


def _annotated_input(handler: object) -> str | None:
    """ "record" or "batch" as the handler's first parameter is annotated; None when it is
    not, or when the annotation cannot be resolved."""
    try:
        parameters = list(inspect.signature(handler, eval_str=True).parameters.values())  # type: ignore[arg-type]
    except (TypeError, ValueError, NameError, AttributeError, SyntaxError):
        return None
    if not parameters:
        return None
    annotation = parameters[0].annotation
    if annotation is Record:
        return "record"
    if get_origin(annotation) in _BATCH_ORIGINS and Record in get_args(annotation):
        return "batch"
    return None
