"""What a handler returns to produce records (consume-transform-produce): `Output`.

With `outputs=True`, a handler's return value is its outputs: None (or an empty iterable) for
none, one `Output`, or an iterable of them (a list, a tuple, a generator: a sync handler may
`yield` them). A batch handler returns the outputs of its whole batch. The library's producer
writes them (control/outputs.py), and the record (or the batch) completes only once the broker
acknowledged every one of them.

`Output` checks and normalises its fields when built, in the handler's own thread: a str key,
value or header value becomes its UTF-8 bytes, a dict of headers a list of pairs. So a wrong
type fails inside the handler call, as a TypeError naming the field: a failed attempt like any
other exception, with the handler's traceback.

A leaf module (standard library only): the engines build outputs, the codec ships them from
worker processes, the control plane produces them.

Threads: an Output is built on the thread that runs the handler and never changed afterwards
(its slots are set once, in __init__), so handing it to the control thread is safe.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

OutputHeaders = list[tuple[str, bytes | None]]
HeadersIn = Mapping[str, bytes | str | None] | Iterable[tuple[str, bytes | str | None]]


def _as_bytes(value: object, field: str) -> bytes | None:
    if value is None or type(value) is bytes:
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(f"Output {field} must be bytes, str or None, got {type(value).__name__}")


def _as_headers(headers: object) -> OutputHeaders | None:
    if headers is None:
        return None
    pairs: Iterable[Any]
    if isinstance(headers, Mapping):
        pairs = headers.items()
    elif isinstance(headers, str | bytes) or not isinstance(headers, Iterable):
        raise TypeError(
            "Output headers must be a dict or a list of (name, value) pairs, got "
            f"{type(headers).__name__}"
        )
    else:
        pairs = headers
    out: OutputHeaders = []
    for pair in pairs:
        if not isinstance(pair, tuple | list) or len(pair) != 2 or not isinstance(pair[0], str):
            raise TypeError(
                f"Output headers: each must be a (str name, value) pair, got {pair!r:.80}"
            )
        out.append((pair[0], _as_bytes(pair[1], f"header {pair[0]!r}")))
    return out


class Output:
    """One record to produce: `Output(topic, value, key=None, headers=None, partition=None)`.

    `topic`: a non-empty str. `value`, `key`: bytes, str (encoded as UTF-8) or None.
    `headers`: a dict or a list of (name, value) pairs, values bytes, str or None; stored as a
    list of (str, bytes | None). `partition`: an int >= 0, or None for the producer's
    partitioner (librdkafka's `partitioner` setting; its default, consistent_random, sends one
    key to one partition). Raises TypeError for a wrong type, ValueError for an empty topic or
    a negative partition. Compared by value; immutable by convention (slots set once).
    """

    __slots__ = ("headers", "key", "partition", "topic", "value")

    topic: str
    value: bytes | None
    key: bytes | None
    headers: OutputHeaders | None
    partition: int | None

    def __init__(
        self,
        topic: str,
        value: bytes | str | None,
        key: bytes | str | None = None,
        headers: HeadersIn | None = None,
        partition: int | None = None,
    ) -> None:
        if not isinstance(topic, str):
            raise TypeError(f"Output topic must be a str, got {type(topic).__name__}")
        if not topic:
            raise ValueError("Output topic must not be empty")
        if partition is not None:
            if not isinstance(partition, int) or isinstance(partition, bool):
                raise TypeError(
                    f"Output partition must be an int or None, got {type(partition).__name__}"
                )
            if partition < 0:
                raise ValueError(f"Output partition must be >= 0 or None, got {partition}")
        self.topic = topic
        self.value = _as_bytes(value, "value")
        self.key = _as_bytes(key, "key")
        self.headers = _as_headers(headers)
        self.partition = partition

    def __repr__(self) -> str:
        size = 0 if self.value is None else len(self.value)
        where = "" if self.partition is None else f", partition={self.partition}"
        unit = "byte" if size == 1 else "bytes"
        return f"Output(topic={self.topic!r}, key={self.key!r:.60}, value=<{size:,} {unit}>{where})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Output):
            return NotImplemented
        return (
            self.topic == other.topic
            and self.value == other.value
            and self.key == other.key
            and self.headers == other.headers
            and self.partition == other.partition
        )

    __hash__ = None  # type: ignore[assignment]  # compared by value; headers are a list

    def __reduce__(self) -> tuple[type[Output], tuple[object, ...]]:
        return (Output, (self.topic, self.value, self.key, self.headers, self.partition))

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (librdkafka adds the record framing)."""
        size = len(self.key or b"") + len(self.value or b"")
        if self.headers:
            size += sum(len(n.encode()) + len(v or b"") for n, v in self.headers)
        return size


class HandlerReturnError(TypeError):
    """A handler returned what nothing would act on: an Output with outputs=False, something
    other than outputs with outputs=True, or a coroutine or async generator that nothing
    awaits. Raised inside the attempt, so it fails it like any exception; the class name in
    the traceback tells errors.ProcessingError that the handler, not the record, is at fault."""


def outputs_of(returned: object) -> list[Output] | None:
    """A handler's return value as its outputs: None when there are none (None, or an empty
    iterable), else the list of Outputs in the order given. Iterating a generator runs the
    rest of the handler, so call this inside the attempt: what it raises is the attempt's
    failure. Raises HandlerReturnError for anything else, naming what was returned."""
    if returned is None:
        return None
    if isinstance(returned, Output):
        return [returned]
    _refuse_unawaited(returned)
    if isinstance(returned, str | bytes | Mapping) or not isinstance(returned, Iterable):
        raise HandlerReturnError(_not_outputs(returned))
    outputs = list(returned)
    for output in outputs:
        if not isinstance(output, Output):
            raise HandlerReturnError(_not_outputs(output, inside=True))
    return outputs or None


def no_outputs(returned: object) -> None:
    """`outputs_of` with outputs=False: a handler's return value is ignored, unless it holds an
    Output (one, or a list or tuple starting with one), which nothing would produce, or is a
    coroutine or async generator, whose work nothing would run: HandlerReturnError then,
    naming the fix, so that it fails the attempt rather than vanish."""
    _refuse_unawaited(returned)
    first = returned[0] if isinstance(returned, list | tuple) and returned else returned
    if isinstance(first, Output):
        raise HandlerReturnError(
            f"the handler returned an Output ({first!r:.80}) but outputs=False, so nothing "
            "would produce it: pass outputs=True to produce what the handler returns"
        )


def _refuse_unawaited(returned: object) -> None:
    """Raise HandlerReturnError when `returned` is awaitable (a coroutine, a future) or an
    async generator: the handler is asynchronous in a way the engine could not see before
    calling it (a lambda or a plain wrapper around an `async def`), so the record's work
    never ran. A coroutine is closed first (no "never awaited" warning: this error says it)."""
    kind = type(returned)
    if not (hasattr(kind, "__await__") or hasattr(kind, "__anext__")):
        return
    if inspect.iscoroutine(returned):
        returned.close()
    raise HandlerReturnError(
        f"the handler returned {kind.__name__} {returned!r:.80} instead of doing its work: "
        "it wraps an async function (a lambda or a plain function calling one, or a plain "
        "decorator), so nothing awaited it and the record was not handled. Give the `async "
        "def` function itself (or an object whose __call__ is `async def`) as the handler, "
        "on an engine that runs coroutines"
    )


def collector(outputs: bool) -> Callable[[object], list[Output] | None]:
    """What the engines call on a handler's return value that is not None: `outputs_of`, or
    `no_outputs` when outputs are off."""
    return outputs_of if outputs else no_outputs


def _not_outputs(value: object, inside: bool = False) -> str:
    what = f"an iterable holding a {type(value).__name__}" if inside else type(value).__name__
    return (
        f"with outputs=True a handler returns its outputs: None, an Output or an iterable of "
        f"Outputs; it returned {what} ({value!r:.80})"
    )
