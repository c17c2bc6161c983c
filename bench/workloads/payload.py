"""The records the bench produces: keys spread over `num_keys`, values of a fixed size."""

from __future__ import annotations

PAYLOAD_SIZE = 100


def make_value(seq: int, size: int = PAYLOAD_SIZE) -> bytes:
    """The record value: the sequence number, zero-padded to `size` bytes."""
    head = b"%012d:" % seq
    return head + b"x" * max(0, size - len(head))


def make_key(seq: int, num_keys: int) -> bytes:
    """``key-<seq mod num_keys>``: records of one key are `num_keys` apart."""
    return b"key-%d" % (seq % num_keys)
