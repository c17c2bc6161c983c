"""The process engine's IPC codec: record batches to the workers, result batches back.

The wire format is plain msgpack, exactly the bytes of ``msgpack.packb(obj, use_bin_type=True)``:

    record batch (parent -> worker):
        [0, [[work_id, topic, partition, offset, key, value, headers, timestamp], ...]]
        work_id, partition, offset, timestamp: int; topic: str; key, value: bytes | None;
        headers: [[name: str, value: bytes | None], ...] | None
        In batch mode (engines/batching.py) a work item is a batch of records: its records
        follow one another under the same work_id, and the worker groups them back.
    result batch (worker -> parent):
        [1, [[work_id, outcome, attempts, error], ...]]
        work_id: int; outcome: int >= 0, the code of a `work.Outcome` (0 succeeded, 1 failed,
        2 cancelled, 3 stopped); attempts: handler attempts, int >= 0; error: traceback text | None
        A result whose handler returned outputs (outputs=True) has a fifth field:
        [work_id, outcome, attempts, error, [[topic, value, key, headers, partition], ...]]
        topic: str; value, key: bytes | None; headers as a record's; partition: int | None.
        Version-safe: a result without outputs is the four fields, byte for byte as before, and
        both lengths decode (`Result.outputs` None for four), so only a worker that produces
        outputs sends the new form.

Two implementations behind one interface (the functions below and ``load_codec``):

- ``native``: the Cython module ``pyrallel_consumer._codec`` (ext/codec.pyx), which writes the
  msgpack bytes straight from Record attributes and builds Records straight from the bytes.
- ``msgpack``: this module's pure-Python twin on the msgpack package; always available.

Both produce identical bytes, decode each other's output, and raise ``CodecError`` for input
that is not a well-formed batch (bad msgpack, wrong shape, wrong field type, trailing bytes) and
for what msgpack cannot encode (an int outside int64/uint64, a str that is not valid Unicode).
When encoding, the native codec also rejects a field of the wrong type (say a str key, or an
outcome or attempts that is a bool or negative), with a CodecError naming the item and the
field; the twin packs whatever msgpack can, and the decoders reject it on the other side.
Decoding never trusts a length: the native reader checks the bounds of every read, and the twin
relies on msgpack's own checks.

``PYRALLEL_CODEC`` picks the implementation when this module is imported: ``auto`` (default:
native if built, else msgpack), ``native`` (ImportError if not built) or ``msgpack``.
``IMPLEMENTATION`` says which one the module-level functions use.

Threads: no state beyond the choice made at import, so any thread may call it: the control
thread encodes, the reader threads decode, and in a worker the main thread decodes and the
result sender's thread encodes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record

__all__ = [
    "IMPLEMENTATION",
    "Codec",
    "CodecError",
    "Result",
    "ResultFields",
    "available_codecs",
    "decode_records",
    "decode_results",
    "encode_records",
    "encode_results",
    "load_codec",
]

RECORD_BATCH = 0
RESULT_BATCH = 1


class Result(NamedTuple):
    """A worker's report on one record, as it travels back to the parent."""

    work_id: int
    outcome: int  # a `work.Outcome` (an IntEnum); decoded as its plain int code
    attempts: int  # how many times the handler ran, >= 0
    error: str | None  # the last traceback when the outcome is FAILED or STOPPED
    outputs: list[Output] | None = None  # what the handler returned to produce (outputs=True)


# What `encode_results` takes: a Result, or the plain tuple of its fields, the outputs left out
# when there are none (the worker builds plain tuples: a NamedTuple per record costs ~0.4 us on
# its hot path).
ResultFields = (
    tuple[int, int, int, str | None] | tuple[int, int, int, str | None, list[Output] | None]
)


ENV_VAR = "PYRALLEL_CODEC"
CHOICES = ("auto", "native", "msgpack")


class CodecError(ValueError):
    """A batch could not be encoded or decoded; the message says what was wrong, and where."""


@dataclass(frozen=True)
class Codec:
    """One implementation, as ``load_codec`` returns it: its name and the four batch functions."""

    name: str
    encode_records: Callable[[Sequence[tuple[int, Record]]], bytes]
    decode_records: Callable[[bytes], list[tuple[int, Record]]]
    encode_results: Callable[[Sequence[ResultFields]], bytes]
    decode_results: Callable[[bytes], list[Result]]


# --- the msgpack-package twin ---------------------------------------------------------------

_packb: Callable[..., bytes] = msgpack.packb
_unpackb: Callable[..., Any] = msgpack.unpackb

# What msgpack raises for bytes it cannot unpack (ExtraData, FormatError and StackError are
# ValueError subclasses) or objects it cannot pack (TypeError, OverflowError, and
# UnicodeEncodeError, which is a ValueError).
_MSGPACK_ERRORS = (ValueError, TypeError, OverflowError)


def _msgpack_encode_records(items: Sequence[tuple[int, Record]]) -> bytes:
    try:
        batch = [
            [work_id, r.topic, r.partition, r.offset, r.key, r.value, r.headers, r.timestamp]
            for work_id, r in items
        ]
        return _packb([RECORD_BATCH, batch], use_bin_type=True)
    except _MSGPACK_ERRORS as exc:
        raise CodecError(f"cannot encode record batch: {exc}") from exc


def _msgpack_encode_results(results: Sequence[ResultFields]) -> bytes:
    try:
        # msgpack packs the Result tuples as arrays, as it does lists.
        return _packb([RESULT_BATCH, [_result_fields(r) for r in results]], use_bin_type=True)
    except _MSGPACK_ERRORS as exc:
        raise CodecError(f"cannot encode result batch: {exc}") from exc
    except AttributeError as exc:  # an output that is not an Output
        raise CodecError(f"cannot encode result batch: an output is not an Output: {exc}") from exc


def _result_fields(result: ResultFields) -> Sequence[Any]:
    """The wire fields of one result: four without outputs, five with them."""
    if len(result) == 4:
        return result
    outputs = result[4]
    if outputs is None:
        return result[:4]
    return (
        *result[:4],
        [[o.topic, o.value, o.key, o.headers, o.partition] for o in outputs],
    )


def _unpack_batch(data: bytes, tag: int, kind: str) -> Any:
    try:
        batch = _unpackb(data, raw=False, use_list=False)
    except Exception as exc:  # ValueError subclasses mostly; whatever it is, it is the bytes
        raise CodecError(f"malformed {kind}: {type(exc).__name__}: {exc}") from exc
    if type(batch) is not tuple or len(batch) != 2 or type(batch[1]) is not tuple:
        raise CodecError(f"malformed {kind}: expected [{tag}, [...]], got {batch!r:.100}")
    if type(batch[0]) is not int or batch[0] != tag:
        raise CodecError(f"malformed {kind}: expected tag {tag}, got {batch[0]!r:.100}")
    return batch[1]


def _bad_field(kind: str, index: int, item: object) -> CodecError:
    return CodecError(f"malformed {kind}: item {index} has the wrong shape or types: {item!r:.200}")


def _valid_headers(headers: Any) -> bool:
    if headers is None:
        return True
    if type(headers) is not tuple:
        return False
    for header in headers:
        if (
            type(header) is not tuple
            or len(header) != 2
            or type(header[0]) is not str
            or (header[1] is not None and type(header[1]) is not bytes)
        ):
            return False
    return True


def _msgpack_decode_records(data: bytes) -> list[tuple[int, Record]]:
    out = []
    for index, item in enumerate(_unpack_batch(data, RECORD_BATCH, "record batch")):
        # Checked as strictly as the native decoder, so both reject the same inputs.
        if type(item) is not tuple or len(item) != 8:
            raise _bad_field("record batch", index, item)
        work_id, topic, partition, offset, key, value, headers, timestamp = item
        if not (
            type(work_id) is int
            and type(topic) is str
            and type(partition) is int
            and type(offset) is int
            and (key is None or type(key) is bytes)
            and (value is None or type(value) is bytes)
            and type(timestamp) is int
            and _valid_headers(headers)
        ):
            raise _bad_field("record batch", index, item)
        out.append(
            (
                work_id,
                Record(
                    topic,
                    partition,
                    offset,
                    key,
                    value,
                    None if headers is None else list(headers),
                    timestamp,
                ),
            )
        )
    return out


def _msgpack_decode_results(data: bytes) -> list[Result]:
    out: list[Result] = []
    for index, item in enumerate(_unpack_batch(data, RESULT_BATCH, "result batch")):
        if (
            type(item) is not tuple
            or len(item) not in (4, 5)
            or type(item[0]) is not int
            or type(item[1]) is not int
            or item[1] < 0
            or type(item[2]) is not int
            or item[2] < 0
            or (item[3] is not None and type(item[3]) is not str)
        ):
            raise _bad_field("result batch", index, item)
        if len(item) == 4 or item[4] is None:
            out.append(Result(*item[:4]))
            continue
        outputs = _decode_outputs(item[4])
        if outputs is None:
            raise _bad_field("result batch", index, item)
        out.append(Result(item[0], item[1], item[2], item[3], outputs))
    return out


def _decode_outputs(wire: Any) -> list[Output] | None:
    """The outputs of one result, or None when they are malformed."""
    if type(wire) is not tuple:
        return None
    outputs = []
    for fields in wire:
        if type(fields) is not tuple or len(fields) != 5:
            return None
        topic, value, key, headers, partition = fields
        if not (
            type(topic) is str
            and topic
            and (value is None or type(value) is bytes)
            and (key is None or type(key) is bytes)
            and (partition is None or (type(partition) is int and partition >= 0))
            and _valid_headers(headers)
        ):
            return None
        outputs.append(
            Output(topic, value, key, None if headers is None else list(headers), partition)
        )
    return outputs


# --- selection -------------------------------------------------------------------------------

_MSGPACK_CODEC = Codec(
    name="msgpack",
    encode_records=_msgpack_encode_records,
    decode_records=_msgpack_decode_records,
    encode_results=_msgpack_encode_results,
    decode_results=_msgpack_decode_results,
)


def _load_native() -> Codec:
    try:
        import pyrallel_consumer._codec as _codec  # consults sys.modules (tests block it)
    except ImportError as exc:
        raise ImportError(
            "the native codec (pyrallel_consumer._codec) is not built: run `make build-ext` "
            f"(python setup.py build_ext --inplace), or set {ENV_VAR}=msgpack"
        ) from exc
    return Codec(
        name="native",
        encode_records=_codec.encode_records,
        decode_records=_codec.decode_records,
        encode_results=_codec.encode_results,
        decode_results=_codec.decode_results,
    )


def load_codec(name: str = "auto") -> Codec:
    """Return one implementation: "native", "msgpack", or "auto" (native if built).

    Raises ImportError for "native" when the extension is not built, ValueError for a name
    that is not one of those three.
    """
    if name == "msgpack":
        return _MSGPACK_CODEC
    if name == "native":
        return _load_native()
    if name == "auto":
        try:
            return _load_native()
        except ImportError:
            return _MSGPACK_CODEC
    raise ValueError(f"codec must be one of {', '.join(CHOICES)}, got {name!r}")


def available_codecs() -> list[str]:
    """The implementations that can be loaded here: always "msgpack", "native" when built."""
    names = ["msgpack"]
    try:
        _load_native()
    except ImportError:
        return names
    return ["native", *names]


def _from_environment() -> Codec:
    name = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if name not in CHOICES:
        raise ValueError(f"{ENV_VAR} must be one of {', '.join(CHOICES)}, got {name!r}")
    return load_codec(name)


_selected = _from_environment()

IMPLEMENTATION: str = _selected.name
encode_records = _selected.encode_records
decode_records = _selected.decode_records
encode_results = _selected.encode_results
decode_results = _selected.decode_results
