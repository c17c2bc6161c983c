"""Commit metadata: which offsets above the committed position already completed.

Wire format (versioned so a later release can change it): base64 of one header byte followed by
the payload. Header = (VERSION << 4) | (encoding << 1) | compressed. The payload is either

- a bitset (encoding 0): bit i set <=> offset position + 1 + i completed, little-endian bit order;
- run lengths (encoding 1): unsigned LEB128 varints alternating incomplete, complete, incomplete,
  ... run lengths, starting at position + 1 (the committed position itself is always incomplete).

and is zlib-compressed when that is smaller. The smallest of the candidates wins, so dense and
sparse completion patterns both stay compact. A string that does not fit the broker's limit
(offset.metadata.max.bytes, 4096 by default) is never produced: `encode` returns the longest
prefix of the completed set that fits and says whether it had to cut. It never has to: a
PartitionState stops taking records before any outcome of what it received could outgrow the
limit, using the size bounds below (`max_payload`, `always_fits_span`, `run_length_size`).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable

VERSION = 1
BITSET = 0
RUN_LENGTH = 1
MAX_METADATA_BYTES = 4096  # Kafka's default offset.metadata.max.bytes
# zlib never compresses better than about 1032:1, so a bitset longer than this many times the
# limit cannot fit however regular it is; building it would only cost memory (a gap of 2**40
# offsets in a compacted topic would mean a 128 GiB bitset).
_ZLIB_MAX_RATIO = 1100


class MetadataError(ValueError):
    """Commit metadata that this version cannot read (foreign, corrupt or from a newer version)."""


def max_payload(limit: int) -> int:
    """The longest payload (bytes after the header byte) whose base64 text fits in `limit`
    characters: base64 turns every started 3 bytes into 4 characters. Negative when not even
    the header fits."""
    return 3 * (limit // 4) - 1


def always_fits_span(limit: int) -> int:
    """Offsets above a position within which any completed set fits in `limit`: a set whose
    highest offset is below position + span has a raw bitset of at most span // 8 + 1 bytes,
    and the encoder never picks a candidate larger than that bitset."""
    return 8 * (max_payload(limit) - 1)


def varint_size(value: int) -> int:
    """Bytes of `value` (>= 0) as an unsigned LEB128 varint."""
    return max(1, (value.bit_length() + 6) // 7)


def relative_offsets(position: int, completed: Iterable[int]) -> list[int]:
    """The completed offsets above `position`, as sorted offsets relative to position + 1."""
    return sorted(o - position - 1 for o in completed if o > position)


def run_length_size(relative: list[int]) -> int:
    """Bytes of the uncompressed run-length payload of `relative` (sorted, as from
    `relative_offsets`), without building it."""
    size = 0
    cursor = 0  # next relative offset not yet described
    start = previous = -2
    for r in relative:
        if r != previous + 1:
            if start >= 0:
                size += varint_size(start - cursor) + varint_size(previous - start + 1)
                cursor = previous + 1
            start = r
        previous = r
    if start >= 0:
        size += varint_size(start - cursor) + varint_size(previous - start + 1)
    return size


def _bitset(relative: list[int]) -> bytes:
    bits = bytearray((relative[-1] >> 3) + 1)
    for r in relative:
        bits[r >> 3] |= 1 << (r & 7)
    return bytes(bits)


def _varint(value: int, out: bytearray) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _run_lengths(relative: list[int]) -> bytes:
    out = bytearray()
    cursor = 0  # next relative offset not yet described
    index = 0
    while index < len(relative):
        start = relative[index]
        end = start
        while index + 1 < len(relative) and relative[index + 1] == end + 1:
            index += 1
            end += 1
        _varint(start - cursor, out)  # incomplete run
        _varint(end - start + 1, out)  # complete run
        cursor = end + 1
        index += 1
    return bytes(out)


def _pack(relative: list[int], limit: int) -> str:
    payloads = [(RUN_LENGTH, _run_lengths(relative))]
    if (relative[-1] >> 3) + 1 <= _ZLIB_MAX_RATIO * limit:
        payloads.append((BITSET, _bitset(relative)))
    candidates = []
    for encoding, payload in payloads:
        candidates.append((encoding, 0, payload))
        candidates.append((encoding, 1, zlib.compress(payload, 6)))
    encoding, compressed, payload = min(candidates, key=lambda c: len(c[2]))
    header = (VERSION << 4) | (encoding << 1) | compressed
    return base64.b64encode(bytes([header]) + payload).decode("ascii")


def encode(
    position: int, completed: Iterable[int], limit: int = MAX_METADATA_BYTES
) -> tuple[str, bool]:
    """Encode the completed offsets above `position` (the committed, incomplete offset).

    Returns (metadata, complete): `complete` is False when only a prefix of the set fit in
    `limit` bytes, which is safe (the rest is redone after a restart) but means the partition
    should stop taking work until the gap closes.
    """
    return encode_relative(relative_offsets(position, completed), limit)


def encode_relative(relative: list[int], limit: int = MAX_METADATA_BYTES) -> tuple[str, bool]:
    """`encode` for offsets already made relative and sorted by `relative_offsets`."""
    if not relative:
        return "", True
    text = _pack(relative, limit)
    if len(text) <= limit:
        return text, True
    # Halve the prefix until it fits: a shorter prefix never encodes larger.
    keep = len(relative) // 2
    while keep:
        text = _pack(relative[:keep], limit)
        if len(text) <= limit:
            return text, False
        keep //= 2
    return "", False


def _read_varint(data: bytes, index: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if index >= len(data):
            raise MetadataError("truncated run-length varint")
        byte = data[index]
        index += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, index
        shift += 7
        if shift > 63:
            raise MetadataError("run-length varint longer than 64 bits")


def decode(position: int, metadata: str | None) -> set[int]:
    """The completed offsets that `encode` wrote for `position`; empty for empty metadata."""
    if not metadata:
        return set()
    try:
        raw = base64.b64decode(metadata.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise MetadataError(f"commit metadata is not base64: {metadata[:40]!r}") from exc
    if not raw or raw[0] >> 4 != VERSION:
        raise MetadataError(f"commit metadata has an unknown version: {metadata[:40]!r}")
    encoding = (raw[0] >> 1) & 0x7
    payload = raw[1:]
    if raw[0] & 1:
        try:
            payload = zlib.decompress(payload)
        except zlib.error as exc:
            raise MetadataError("commit metadata does not decompress") from exc
    base = position + 1
    if encoding == BITSET:
        return {
            base + (i << 3) + bit
            for i, byte in enumerate(payload)
            if byte
            for bit in range(8)
            if byte >> bit & 1
        }
    if encoding == RUN_LENGTH:
        offsets: set[int] = set()
        index = cursor = 0
        while index < len(payload):
            gap, index = _read_varint(payload, index)
            length, index = _read_varint(payload, index)
            cursor += gap
            offsets.update(range(base + cursor, base + cursor + length))
            cursor += length
        return offsets
    raise MetadataError(f"commit metadata has an unknown encoding {encoding}")
