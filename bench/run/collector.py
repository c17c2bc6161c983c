"""What the bench keeps while a run consumes: one sample per completion, the failures, and
when the group first assigned partitions (the end of the join)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.measure.stats import CompletionSample
from bench.output.progress import Progress


class Collector:
    """on_complete / on_assign callbacks; both run on the thread that called run(), in this
    process or in a member process (bench/run/members.py)."""

    def __init__(self, progress: Progress) -> None:
        self.samples: list[CompletionSample] = []
        self.failed = 0
        self.assigned_at: list[float] = []  # time.monotonic() of every non-empty assignment
        self.on_first_assign: list[Callable[[], None]] = []  # e.g. start the open-loop producer
        self._progress = progress

    def on_complete(self, completion: Any) -> None:
        ok = bool(completion.ok)
        if not ok:
            self.failed += 1
        self.samples.append(
            CompletionSample(
                completion.partition,
                completion.offset,
                completion.key,
                completion.received_at,
                completion.dispatched_at,
                completion.completed_at,
                ok,
            )
        )
        self._progress.advance()

    @property
    def first_assign_at(self) -> float | None:
        return self.assigned_at[0] if self.assigned_at else None

    def on_assign(self, partitions: Sequence[tuple[str, int]]) -> None:
        if not partitions:
            return
        self.assigned_at.append(time.monotonic())
        if len(self.assigned_at) == 1:
            for callback in self.on_first_assign:
                callback()
