"""Numbers of one run, computed from the completions the consumer reported.

Pure functions over plain data (no Kafka, no clock), so they are tested against known inputs.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class CompletionSample(Protocol):
    """What the figures read of one completion: the `pyrallel_consumer.Completion` itself, as
    on_complete gave it. The bench keeps it as is, not a copy: the copy, built on the
    consumer's thread once per record, cost about 1 us there (a frozen dataclass, `timeit`),
    as much as half of the library's own cost per record on its zero-work paths."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def received_at(self) -> float: ...  # time.monotonic() when the consumer received it
    @property
    def dispatched_at(self) -> float: ...  # handed to the engine (its backlog wait over)
    @property
    def completed_at(self) -> float: ...  # time.monotonic() when the handler finished
    @property
    def ok(self) -> bool: ...


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation between closest ranks.

    The same definition as numpy's default ("linear"), so results compare with other tools.
    NaN for no data: a missing number must not look like a zero latency.
    """
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return math.nan
    rank = (n - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, n - 1)
    fraction = rank - low
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * fraction


@dataclass(frozen=True)
class LatencySummary:
    """Per-record times in milliseconds (NaN without data)."""

    count: int
    avg_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


def summarize_latencies(latencies_s: Iterable[float]) -> LatencySummary:
    """Average, p50/p95/p99 and maximum of per-record times given in seconds, in milliseconds."""
    values = sorted(value * 1000 for value in latencies_s)
    if not values:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan)
    return LatencySummary(
        count=len(values),
        avg_ms=math.fsum(values) / len(values),
        p50_ms=percentile(values, 50),
        p95_ms=percentile(values, 95),
        p99_ms=percentile(values, 99),
        max_ms=values[-1],
    )


@dataclass(frozen=True)
class Correctness:
    ordering_violations: int
    duplicates: int
    missing: int
    unique_processed: int


def ordering_violations(samples: Sequence[CompletionSample], ordering: str) -> int:
    """Completions that finished before an earlier offset of the same key (or partition).

    Records of one key (key ordering) or one partition (partition ordering) must complete in
    offset order. Samples are taken in completion-time order; within each group every offset
    must be higher than the highest seen so far, and each one that is not counts once.
    Duplicates (a redone record) are not violations and are counted apart.
    """
    if ordering == "unordered":
        return 0
    highest: dict[tuple[int, bytes | None], int] = {}
    seen: set[tuple[int, int]] = set()
    violations = 0
    for sample in sorted(samples, key=lambda s: s.completed_at):
        ident = (sample.partition, sample.offset)
        if ident in seen:
            continue
        seen.add(ident)
        group = (sample.partition, sample.key if ordering == "key" else None)
        previous = highest.get(group)
        if previous is not None and sample.offset < previous:
            violations += 1
        else:
            highest[group] = sample.offset
    return violations


def check_correctness(
    samples: Sequence[CompletionSample], expected: int, ordering: str
) -> Correctness:
    """Ordering violations, duplicates (a (partition, offset) completed more than once) and
    missing records (produced but never completed)."""
    unique = {(s.partition, s.offset) for s in samples}
    return Correctness(
        ordering_violations=ordering_violations(samples, ordering),
        duplicates=len(samples) - len(unique),
        missing=max(0, expected - len(unique)),
        unique_processed=len(unique),
    )


@dataclass(frozen=True)
class Throughput:
    processing_time_s: float  # first record received -> last record completed
    throughput_tps: float


def throughput(samples: Sequence[CompletionSample]) -> Throughput:
    """Messages per second over the processing window (join time excluded)."""
    if not samples:
        return Throughput(math.nan, math.nan)  # no data is not a zero throughput
    start = min(s.received_at for s in samples)
    end = max(s.completed_at for s in samples)
    span = end - start
    unique = len({(s.partition, s.offset) for s in samples})
    return Throughput(span, unique / span if span > 0 else math.nan)


def completion_throughput(samples: Sequence[CompletionSample]) -> Throughput:
    """Open loop: records per second over the records' completions, first -> last (n records
    complete in n - 1 intervals). Not from the first receipt: an open-loop consumer receives
    the measured records while it still works through the warm-up's, and that wait is the
    warm-up's time, not theirs."""
    unique = len({(s.partition, s.offset) for s in samples})
    if unique < 2:
        return Throughput(math.nan, math.nan)
    span = max(s.completed_at for s in samples) - min(s.completed_at for s in samples)
    return Throughput(span, (unique - 1) / span if span > 0 else math.nan)


def sojourn_times(samples: Iterable[CompletionSample]) -> list[float]:
    """Seconds from receipt by the consumer to done: the wait in the backlog + the handling."""
    return [s.completed_at - s.received_at for s in samples]


def handling_times(samples: Iterable[CompletionSample]) -> list[float]:
    """Seconds from the hand-over to the engine to done: the handling alone (a free runner,
    the handler, retries, the report's way back), without the wait in the backlog."""
    return [s.completed_at - s.dispatched_at for s in samples]
