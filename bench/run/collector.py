"""What the bench keeps while a run consumes: every completion as on_complete gave it, and when
the group first assigned partitions (the end of the join).

Nothing of the bench's runs per record on the consumer's thread but the list's own `append`:
that thread is the library's control thread, whose cost per record is what the bench measures.
The progress is counted from the list's length on a thread of its own (`counting`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence, Sized

from bench.measure.stats import CompletionSample
from bench.output.progress import Progress

PROGRESS_INTERVAL_S = 0.1  # how often `counting` reports the completions so far


class Collector:
    """on_complete / on_assign callbacks; both run on the thread that called run(), in this
    process or in a member process (bench/run/members.py). `on_complete` is `samples.append`
    (a C call, no Python frame per record)."""

    def __init__(self, progress: Progress) -> None:
        self.samples: list[CompletionSample] = []
        self.on_complete: Callable[[CompletionSample], None] = self.samples.append
        self.assigned_at: list[float] = []  # time.monotonic() of every non-empty assignment
        self.on_first_assign: list[Callable[[], None]] = []  # e.g. start the open-loop producer
        self._progress = progress

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

    def counting(self) -> contextlib.AbstractContextManager[None]:
        """While the block runs: the progress advances by the completions collected."""
        return counting(self.samples, self._progress.advance)


@contextlib.contextmanager
def counting(
    samples: Sized, report: Callable[[int], None], interval_s: float = PROGRESS_INTERVAL_S
) -> Iterator[None]:
    """While the block runs, every `interval_s` seconds, and once more after it: `report(n)`
    with the n samples appended since the last report (or the block's start), from a thread
    of its own (the last completions of a phase come with no callback after them)."""
    finished = threading.Event()
    start = len(samples)

    def run() -> None:
        reported = start
        while True:
            last = finished.wait(interval_s)
            count = len(samples)  # appended by the consumer's thread; len() is atomic
            if count > reported:
                report(count - reported)
                reported = count
            if last:
                return

    thread = threading.Thread(target=run, name="bench-progress-count", daemon=True)
    thread.start()
    try:
        yield
    finally:
        finished.set()
        thread.join()
