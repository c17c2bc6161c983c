"""Completions as the bench keeps them (bench/run/collector.py keeps on_complete's own), built
from the fields its figures read."""

from __future__ import annotations

from pyrallel_consumer import Completion


def completion(
    partition: int,
    offset: int,
    key: bytes | None,
    received_at: float,
    dispatched_at: float,
    completed_at: float,
    ok: bool = True,
) -> Completion:
    """A completion of topic "t" after one attempt; failed ones carry an error."""
    error = None if ok else "Traceback: failed"
    return Completion(
        "t", partition, offset, key, received_at, completed_at, 1, ok, error, dispatched_at
    )
