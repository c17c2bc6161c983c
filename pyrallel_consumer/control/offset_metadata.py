"""Commit metadata: which offsets above the committed position already completed.

Wire format (versioned so a later release can change it): base64 of one header byte followed by
the payload. Header = (VERSION << 4) | (encoding << 1) | compressed. The payload is either

- a bitset (encoding 0): bit i set <=> offset position + 1 + i completed, little-endian bit order;
- run lengths (encoding 1): unsigned LEB128 varints alternating incomplete, complete, incomplete,
  ... run lengths, starting at position + 1 (the committed position itself is always incomplete).

and is zlib-compressed when that is smaller. The smallest of the candidates wins, so dense and
sparse completion patterns both stay compact. A string that does not fit the broker's limit
(offset.metadata.max.bytes, 4096 by default) is never produced: `encode` returns the longest
prefix of the completed set that fits and says whether it had to cut.
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable

VERSION = 1
BITSET = 0
RUN_LENGTH = 1
MAX_METADATA_BYTES = 4096
# Any completed set within this many offsets of the position fits: the raw bitset is at most
# 3/4 of the limit minus the header byte, so its base64 text is within the limit.
ALWAYS_FITS_SPAN = (MAX_METADATA_BYTES * 3 // 4 - 1) * 8
# zlib never compresses better than about 1032:1, so a bitset longer than this many times the
# limit cannot fit however regular it is; building it would only cost memory (a gap of 2**40
# offsets in a compacted topic would mean a 128 GiB bitset).
_ZLIB_MAX_RATIO = 1100


class MetadataError(ValueError):
    """Commit metadata that this version cannot read (foreign, corrupt or from a newer version)."""


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
    relative = sorted(o - position - 1 for o in completed if o > position)
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
