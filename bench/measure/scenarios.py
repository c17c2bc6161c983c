"""Figures of the unfriendly cases, from completions and delivery reports: the other keys'
throughput while a record is stuck, end-to-end latency of an open-loop run, and how a group of
members shared the work. Pure functions over plain data (times are time.monotonic() seconds)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bench.measure import stats
from bench.measure.stats import CompletionSample


def first_completions(samples: Sequence[CompletionSample]) -> list[CompletionSample]:
    """One sample per record (its first completion): a redone record counts once."""
    seen: set[tuple[int, int]] = set()
    out = []
    for sample in sorted(samples, key=lambda s: s.completed_at):
        ident = (sample.partition, sample.offset)
        if ident not in seen:
            seen.add(ident)
            out.append(sample)
    return out


@dataclass(frozen=True)
class StuckWindow:
    """`window_s`: how long the stuck record was in the consumer (received -> completed, or
    -> the last completion when it never completed); `others`: records of the other keys
    completed meanwhile; `others_tps`: their rate while they still had records to do."""

    window_s: float
    others: int
    others_tps: float


def stuck_window(
    samples: Sequence[CompletionSample], stuck: tuple[int, int], stuck_key: bytes
) -> StuckWindow:
    """The other keys' throughput while record `stuck` (partition, offset) was in progress.

    The rate is taken over the part of the window in which they completed records: with a
    long stuck time they may all finish early, and idling afterwards is not slowness.
    """
    records = first_completions(samples)
    if not records:
        return StuckWindow(math.nan, 0, math.nan)
    the_stuck = next((s for s in records if (s.partition, s.offset) == stuck), None)
    start = the_stuck.received_at if the_stuck else min(s.received_at for s in records)
    end = the_stuck.completed_at if the_stuck else max(s.completed_at for s in records)
    inside = [s for s in records if s.key != stuck_key and start <= s.completed_at <= end]
    if not inside:
        return StuckWindow(end - start, 0, 0.0 if end > start else math.nan)
    span = max(s.completed_at for s in inside) - start
    return StuckWindow(end - start, len(inside), len(inside) / span if span > 0 else math.nan)


def others_throughput(samples: Sequence[CompletionSample], stuck_key: bytes) -> float:
    """Records/s of every key but `stuck_key`: first received -> their last completion."""
    records = [s for s in first_completions(samples) if s.key != stuck_key]
    if not records:
        return math.nan
    span = max(s.completed_at for s in records) - min(s.received_at for s in records)
    return len(records) / span if span > 0 else math.nan


def end_to_end_ms(
    samples: Sequence[CompletionSample], sent_at: Mapping[tuple[int, int], float]
) -> stats.LatencySummary:
    """Send (the record's timestamp) -> completion of each record the producer reported."""
    latencies = [
        s.completed_at - sent_at[(s.partition, s.offset)]
        for s in first_completions(samples)
        if (s.partition, s.offset) in sent_at
    ]
    return stats.summarize_latencies(latencies)


@dataclass(frozen=True)
class MemberShare:
    records: int
    throughput_tps: float


def member_shares(member_samples: Sequence[Sequence[CompletionSample]]) -> list[MemberShare]:
    """Records and throughput (its own first receipt -> last completion) of each member."""
    out = []
    for samples in member_samples:
        rate = stats.throughput(samples)
        unique = len({(s.partition, s.offset) for s in samples})
        out.append(MemberShare(unique, rate.throughput_tps))
    return out


def scaling_efficiency(
    aggregate_tps: float, one_member_bound_tps: float, effective_members: int
) -> float:
    """Aggregate / (members that can get a partition x one member's bound); NaN if unknown."""
    reference = one_member_bound_tps * effective_members
    if not math.isfinite(aggregate_tps) or not math.isfinite(reference) or reference <= 0:
        return math.nan
    return aggregate_tps / reference
