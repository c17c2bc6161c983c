"""What `on_complete` receives for every record the consumer finished with."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished record. Times are `time.monotonic()` seconds (one clock for all processes
    on Linux), so `completed_at - received_at` is the record's sojourn (waiting in the backlog
    + handling) and `completed_at - dispatched_at` its handling from its hand-over to the
    engine (waiting for a runner, the handler, retries, and the report's way back)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    received_at: float
    completed_at: float
    attempts: int
    ok: bool  # False: the handler failed every attempt and the record was dead-lettered/skipped
    error: str | None = None
    dispatched_at: float = 0.0  # handed to the engine: its wait in the backlog ended
