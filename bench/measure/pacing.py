"""Open-loop arithmetic: when each record is due, what rate was offered, whether the consumer
kept up. Pure functions over plain numbers (seconds, records), tested against known inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

# The consumer kept up when it completed records at no less than this fraction of the offered
# rate: a consumer that keeps up finishes one end-to-end latency after the last send, which
# costs a few percent on a run of a few seconds; one that falls behind finishes at its own rate.
KEPT_UP_FRACTION = 0.95


def due(elapsed_s: float, rate: float, total: int) -> int:
    """Records that should have been sent `elapsed_s` after the start at `rate` records/s:
    record i is due at i / rate, so record 0 goes at once. Never more than `total`."""
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate) + 1)


def send_time(index: int, rate: float) -> float:
    """Seconds after the start at which record `index` is due."""
    return index / rate


def offered_rate(sent_at: Sequence[float]) -> float:
    """Records/s the producer really offered: the intervals between its first and last send
    (n records span n - 1 intervals); NaN with fewer than two records."""
    if len(sent_at) < 2:
        return math.nan
    span = max(sent_at) - min(sent_at)
    return (len(sent_at) - 1) / span if span > 0 else math.nan


def achieved_rate(count: int, first_sent_at: float, last_completed_at: float) -> float:
    """Records/s the consumer completed, from the first send to the last completion."""
    span = last_completed_at - first_sent_at
    return count / span if count and span > 0 else math.nan


def kept_up(offered_tps: float, achieved_tps: float) -> bool | None:
    """Whether the consumer completed records as fast as they were offered (None: unknown)."""
    if not math.isfinite(offered_tps) or not math.isfinite(achieved_tps):
        return None
    return achieved_tps >= KEPT_UP_FRACTION * offered_tps
