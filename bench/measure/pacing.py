"""Open-loop arithmetic: when each record is due, what rate was offered, whether the consumer
kept up. Pure functions over plain numbers (seconds, records), tested against known inputs."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

# The consumer kept up when it completed records at no less than this fraction of the offered
# rate: a consumer that keeps up finishes one end-to-end latency after the last send, which
# costs a few percent on a run of a few seconds; one that falls behind finishes at its own rate.
KEPT_UP_FRACTION = 0.95
# The pacing loop's finest sleep: records due within it are sent together (at high rates one
# sleep per record would cost more than the sends).
TICK_S = 0.001


def due(elapsed_s: float, rate: float, total: int) -> int:
    """Records that should have been sent `elapsed_s` after the start at `rate` records/s:
    record i is due at i / rate, so record 0 goes at once. Never more than `total`."""
    if elapsed_s < 0:
        return 0
    return min(total, math.floor(elapsed_s * rate) + 1)


def send_time(index: int, rate: float) -> float:
    """Seconds after the start at which record `index` is due."""
    return index / rate


def warmup_records(rate: float, warmup_s: float) -> int:
    """Records due within the first `warmup_s` seconds at `rate` records/s (record i is due at
    i / rate, so those with i < rate x warmup_s): the warm-up, left out of every figure."""
    return max(0, math.ceil(rate * warmup_s)) if warmup_s > 0 else 0


def pace(
    rate: float,
    total: int,
    send: Callable[[int], None],
    poll: Callable[[], object],
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> float:
    """Call send(i) for i in 0..total-1, each once it is due (send_time after the first call of
    `clock`), poll() after each burst; returns how late a send fell behind its schedule at
    worst, in seconds. `clock` and `sleep` are injected so the schedule is testable."""
    start = clock()
    sent = 0
    behind = 0.0
    while sent < total:
        elapsed = clock() - start
        target = due(elapsed, rate, total)
        if target > sent:
            behind = max(behind, elapsed - send_time(sent, rate))
        while sent < target:
            send(sent)
            sent += 1
        poll()
        if sent < total:
            sleep(max(start + send_time(sent, rate) - clock(), TICK_S))
    return behind


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
