"""The handler is checked when the consumer is built: a record handler given batch_size (or a
handler of lists without it) is refused when its annotation says so, naming the fix; handlers
whose first parameter says nothing, or says it in names that cannot be resolved, are not."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pyrallel_consumer import ParallelConsumer, Record

if TYPE_CHECKING:
    from pyrallel_consumer import Record as OnlyForTypeCheckers

KAFKA = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}


def one(record: Record) -> None:
    """A record handler."""


def many(records: list[Record]) -> None:
    """A batch handler."""


async def many_async(records: Sequence[Record]) -> None:
    """A batch handler, async."""


def tagged(tag: str, record: Record) -> None:
    """A record handler once `tag` is bound."""


def unresolvable(record: OnlyForTypeCheckers) -> None:
    """Its annotation names what exists only for type checkers."""


def unannotated(record):  # type: ignore[no-untyped-def]
    """Says nothing."""


def build(handler: Any, **options: Any) -> ParallelConsumer:
    return ParallelConsumer(KAFKA, topics=["t"], handler=handler, **options)


@pytest.mark.parametrize("handler", [one, functools.partial(tagged, "x")], ids=["plain", "partial"])
def test_a_record_handler_given_batch_size_is_refused_naming_the_fix(handler: Any) -> None:
    """Before, it failed at run time on `'list' object has no attribute 'value'`, on every
    attempt and through the bisection."""
    with pytest.raises(ValueError) as raised:
        build(handler, batch_size=10)
    assert "batch_size=10 hands the handler a list of records" in str(raised.value)
    assert "take list[Record] (or Sequence[Record]), or drop batch_size" in str(raised.value)


@pytest.mark.parametrize("handler", [many, many_async], ids=["list", "sequence-async"])
def test_a_batch_handler_without_batch_size_is_refused_naming_the_fix(handler: Any) -> None:
    with pytest.raises(ValueError, match="without batch_size it gets one Record per call"):
        build(handler)


@pytest.mark.parametrize(
    ("handler", "batch_size"),
    [(one, None), (many, 10), (many_async, 10), (unresolvable, 10), (unannotated, 10)],
    ids=["record", "batch", "batch-async", "unresolvable", "unannotated"],
)
def test_handlers_that_fit_or_say_nothing_are_accepted(handler: Any, batch_size: Any) -> None:
    assert build(handler, batch_size=batch_size).config.batch_size == batch_size
