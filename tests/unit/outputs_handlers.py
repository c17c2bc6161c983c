"""Module-level handlers of the outputs tests (the process engine pickles its handler): each
returns outputs built from the record, in the shapes a handler may use."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record


def one(record: Record) -> Output:
    return Output("out", b"v%d" % record.offset, key=record.key, headers={"n": str(record.offset)})


def two_or_none(record: Record) -> list[Output] | None:
    """None for odd offsets, two outputs for even ones."""
    if record.offset % 2:
        return None
    return [
        Output("out", b"a%d" % record.offset),
        Output("out", b"b%d" % record.offset, partition=1),
    ]


def generated(record: Record) -> Iterator[Output]:
    yield Output("out", str(record.offset))


async def one_async(record: Record) -> Output:
    await asyncio.sleep(0)
    return one(record)


def not_outputs(record: Record) -> object:
    return [1, 2]


_flaky_seen: set[int] = set()


def flaky_then_one(record: Record) -> Output:
    """Fails the first attempt of each record, then returns one output."""
    if record.offset not in _flaky_seen:
        _flaky_seen.add(record.offset)
        raise RuntimeError("first attempt fails")
    return one(record)


def batch(records: list[Record]) -> list[Output]:
    return [one(record) for record in records]


class AsyncCall:
    """A handler object whose `__call__` is `async def`: one output per record, once awaited."""

    async def __call__(self, record: Record) -> Output:
        return await one_async(record)


def hidden_async(record: Record) -> object:
    """A plain function returning the coroutine of an `async def` (as a lambda or a plain
    decorator around one does): the engine cannot tell before calling it."""
    return one_async(record)


async def batch_async(records: list[Record]) -> list[Output]:
    await asyncio.sleep(0)
    return batch(records)


def hidden_async_batch(records: list[Record]) -> object:
    """`hidden_async` of a batch handler."""
    return batch_async(records)


async def yielding(record: Record) -> AsyncIterator[Output]:
    """An async generator: calling it runs nothing."""
    yield one(record)
