"""Module-level handlers of the outputs tests (the process engine pickles its handler): each
returns outputs built from the record, in the shapes a handler may use."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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
