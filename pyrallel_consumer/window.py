"""The in-flight window's defaults: `max_in_flight` and `max_in_flight_per_lane` when the
user gives none (config.py derives them; the bench computes its bounds with the same rules).

A leaf module: no imports of this package.
"""

from __future__ import annotations

# max_in_flight when none is given (default_max_in_flight).
DEFAULT_MAX_IN_FLIGHT = 1000
BATCHES_IN_FLIGHT = 4


def default_max_in_flight(batch_size: int | None = None) -> int:
    """The in-flight window when none is given: 1000 records; in batch mode at least
    BATCHES_IN_FLIGHT batches' worth.

    Why several batches: a batch's records stay in flight from its assembly until its report
    is applied, and in key order it holds its keys all that time, so with room for only two
    batches of 500 the engine idled through each round trip (report applied, keys released,
    next batch assembled and sent). Measured with `python -m bench.overhead --num-messages
    200000 --rounds 3` (zero-work handler, one broker, 2 cores), batch_size=500, two alternated
    sets, records/s, max_in_flight 1000 -> 2000: process/key 157k -> 331k and 154k -> 298k,
    async/key 441k -> 475k and 424k -> 459k, async/unordered 586k -> 596k and 546k -> 584k,
    baseline unchanged (493k -> 502k, 495k -> 487k: its one runner never idles). In-process,
    4000 added little more (process 369k -> 377k).
    """
    if batch_size is None:
        return DEFAULT_MAX_IN_FLIGHT
    return max(DEFAULT_MAX_IN_FLIGHT, BATCHES_IN_FLIGHT * batch_size)


def default_lane_cap(max_in_flight: int, batch_size: int | None = None) -> int:
    """The per-lane in-flight cap when none is given: a tenth of the window, at most 32; in
    batch mode at least `batch_size`, so one key can fill a batch (with fewer, a hot key's
    batches go half empty after `batch_max_wait_s`: a third of the throughput was measured
    on zipf keys). A stuck record holds its whole batch's slots anyway.

    A lane runs one record at a time, so the cap only decides how many of its next records
    wait inside the engine, each saving a control-plane round trip, rather than in the backlog.
    A tenth keeps a stuck key to a small share of `max_in_flight`. 32 covers the process
    engine's round trip (about 3 ms measured, zero-work: a cap of 16 cost 30% on 8 busy lanes)
    while a stuck key holds at most a sixteenth of a worker's outstanding window (512 by
    default).
    """
    cap = max(1, min(32, max_in_flight // 10))
    return cap if batch_size is None else max(cap, min(batch_size, max_in_flight))
