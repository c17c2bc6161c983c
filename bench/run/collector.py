"""What the bench keeps while a run consumes: one sample per completion, the failures, and
when the group first assigned partitions (the end of the join)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from bench.measure.stats import CompletionSample
from bench.output.progress import Progress


class Collector:
    """on_complete / on_assign callbacks; both run on the thread that called run()."""

    def __init__(self, progress: Progress) -> None:
        self.samples: list[CompletionSample] = []
        self.failed = 0
        self.first_assign_at: float | None = None  # time.monotonic()
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
                completion.completed_at,
                ok,
            )
        )
        self._progress.advance()

    def on_assign(self, partitions: Sequence[tuple[str, int]]) -> None:
        if self.first_assign_at is None and partitions:
            self.first_assign_at = time.monotonic()
