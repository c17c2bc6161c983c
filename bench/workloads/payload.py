"""The records the bench produces: keys spread over `num_keys`, values of a fixed size.

A value is its sequence number, zero-padded, a colon, then a JSON object padded to the size:

    b'000000000012:{"seq":12,"pad":"xxxx...x"}'

The marker in front (value_marker) lets a wrapper recognise one record without decoding
(bench.workloads.stuck); the JSON object is what the pycpu workload decodes (json_part).
"""

from __future__ import annotations

PAYLOAD_SIZE = 100


def value_marker(seq: int) -> bytes:
    """The start of the value of record `seq`: its zero-padded sequence number and a colon."""
    return b"%012d:" % seq


def make_value(seq: int, size: int = PAYLOAD_SIZE) -> bytes:
    """The value of record `seq`: `size` bytes, or the shortest such value when it needs more
    (13 bytes of marker and the JSON object's own characters)."""
    head = value_marker(seq)
    body = b'{"seq":%d,"pad":"' % seq
    pad = max(0, size - len(head) - len(body) - len(b'"}'))
    return head + body + b"x" * pad + b'"}'


def json_part(value: bytes) -> bytes:
    """The JSON object of a value made by make_value (what follows the marker's colon)."""
    return value.partition(b":")[2]


def make_key(seq: int, num_keys: int) -> bytes:
    """``key-<seq mod num_keys>``: records of one key are `num_keys` apart."""
    return b"key-%d" % (seq % num_keys)
