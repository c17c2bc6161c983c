"""`--stuck-key-ms`: one record (the first of key-0) takes T ms instead of the service time.

In batch mode (`--batch-size`) the call holding that record waits T ms, then does the rest of its
batch: the stuck record takes T ms instead of its share of the call.

The wrappers are module-level and bound with functools.partial, so the process engine can pickle
them into its workers like any workload handler. The stuck record is recognised by its value,
which starts with its sequence number (bench.workloads.payload.make_value).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

from bench.workloads.base import Handler, wants_coroutine
from bench.workloads.keys import key_name
from bench.workloads.payload import value_marker

STUCK_KEY_INDEX = 0  # key-0: the hottest key under zipf and hot distributions
STUCK_KEY = key_name(STUCK_KEY_INDEX)


def stuck_sync(inner: Handler, marker: bytes, stuck_s: float, record: Any) -> Any:
    if record.value is not None and record.value.startswith(marker):
        time.sleep(stuck_s)
        return None
    return inner(record)


async def stuck_async(inner: Handler, marker: bytes, stuck_s: float, record: Any) -> Any:
    if record.value is not None and record.value.startswith(marker):
        await asyncio.sleep(stuck_s)
        return None
    result = inner(record)
    if asyncio.iscoroutine(result):
        return await result
    return result


def stuck_batch_sync(inner: Handler, marker: bytes, stuck_s: float, records: list[Any]) -> Any:
    rest = [r for r in records if r.value is None or not r.value.startswith(marker)]
    if len(rest) < len(records):
        time.sleep(stuck_s)
        if not rest:
            return None
    return inner(rest)


async def stuck_batch_async(
    inner: Handler, marker: bytes, stuck_s: float, records: list[Any]
) -> Any:
    rest = [r for r in records if r.value is None or not r.value.startswith(marker)]
    if len(rest) < len(records):
        await asyncio.sleep(stuck_s)
        if not rest:
            return None
    result = inner(rest)
    if asyncio.iscoroutine(result):
        return await result
    return result


def with_stuck_record(
    inner: Handler, engine: str, stuck_seq: int, stuck_ms: float, *, batch: bool = False
) -> Handler:
    """`inner`, except that record `stuck_seq` waits `stuck_ms` instead (sleeping, as the
    engine's flavour of handler would: asyncio.sleep in a coroutine, time.sleep otherwise).
    `batch`: `inner` is a batch handler (takes a list of records)."""
    coroutine = wants_coroutine(engine) and inspect.iscoroutinefunction(
        getattr(inner, "func", inner)
    )
    wrapper: Callable[..., Any]
    if batch:
        wrapper = stuck_batch_async if coroutine else stuck_batch_sync
    else:
        wrapper = stuck_async if coroutine else stuck_sync
    return functools.partial(wrapper, inner, value_marker(stuck_seq), stuck_ms / 1000)
