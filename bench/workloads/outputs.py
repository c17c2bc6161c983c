"""`--outputs`: each record's handler also returns one output record (consume, transform,
produce; the library runs with `outputs=True` and writes it).

The output goes to the run's output topic with the input's key, so one key's outputs land in
one output partition (the producer's partitioner), and its value names the input record:

    b'<input partition>:<input offset>:<input timestamp, ms since the epoch>'

which is what the output-topic check reads back (bench/measure/outputs.py): which input each
output belongs to, and how long after the input's timestamp it was written.

The wrappers are module-level and bound with functools.partial, so the process engine can pickle
them into its workers like any workload handler; the workload's own work runs first, unchanged
(its return value, None for every workload, is dropped).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from bench.workloads.base import Handler, wants_coroutine
from pyrallel_consumer.output import Output


def output_value(record: Any) -> bytes:
    """The output value of `record`: its partition, offset and timestamp (ms), colon-separated."""
    return b"%d:%d:%d" % (record.partition, record.offset, record.timestamp)


def output_of(topic: str, record: Any) -> Output:
    """The one output of `record`: to `topic`, keyed like the input."""
    return Output(topic, output_value(record), key=record.key)


def emit_sync(inner: Handler, topic: str, record: Any) -> Output:
    inner(record)
    return output_of(topic, record)


async def emit_async(inner: Handler, topic: str, record: Any) -> Output:
    await inner(record)  # with_outputs picks this wrapper only for a coroutine function
    return output_of(topic, record)


def emit_batch_sync(inner: Handler, topic: str, records: list[Any]) -> list[Output]:
    inner(records)
    return [output_of(topic, record) for record in records]


async def emit_batch_async(inner: Handler, topic: str, records: list[Any]) -> list[Output]:
    await inner(records)
    return [output_of(topic, record) for record in records]


def with_outputs(inner: Handler, engine: str, topic: str, *, batch: bool = False) -> Handler:
    """`inner`, then one Output per record to `topic` (a list of them for a batch handler,
    `batch`). The wrapper is a coroutine function when `inner` is one (the async engine's
    coroutine handlers), a plain function otherwise (the async engine then runs it on its
    thread pool, as it would `inner`). Wrap outermost, around --stuck-key-ms's wrapper: the
    stuck record must have its output too."""
    coroutine = wants_coroutine(engine) and inspect.iscoroutinefunction(
        getattr(inner, "func", inner)
    )
    wrapper: Callable[..., Any]
    if batch:
        wrapper = emit_batch_async if coroutine else emit_batch_sync
    else:
        wrapper = emit_async if coroutine else emit_sync
    return functools.partial(wrapper, inner, topic)
