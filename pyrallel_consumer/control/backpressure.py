"""Backpressure: when the poll loop stops taking records, and when it pauses and resumes its
partitions.

Ownership: one `Backpressure` per control loop, used by the control thread only.

In two steps. At capacity the loop first holds: it stops taking records from the client, whose
prefetched records wait there, for up to HOLD_S. Only when no room frees up in that time are the
partitions paused, so that the loop can poll again (rebalance callbacks run inside poll); they
resume once in-flight work plus the backlog fell to the resume mark, half the backlog below
capacity. A blocked partition (some outcome of the records it received could outgrow the
broker's commit metadata limit: control/partition_state.py) stays paused until it is
unblocked, whatever the capacity; the pause lands before the next consume() call, which is the
one poll batch of headroom the block was decided with.

Why not pause at once: librdkafka drops a paused partition's prefetched records and refetches
them only 0.5-1 s after resume (its fetcher is not woken by a resume), so the engine starved
after every pause (measured: 1,480 records/s instead of 3,060 with backlog_size=1000); resuming
at a lower mark alone did not help.

Below capacity, the loop also holds while the backlog has a window's worth of records ready
(`max_in_flight` that a take could hand out now: backlog.py's `ready`), where any records keep
the engine busy: unordered, and in batch mode, where a batch takes records of any lanes. The
rest wait in librdkafka, and the records the backlog hands out were received moments before,
still in the CPU's caches; a backlog filled to its 50,000 records holds tens of MB, so every
record was read back from memory (`python -m bench.overhead`, 400,000 records, control thread
CPU per record: async/key/batch500 2.2-2.3 us -> 1.7-1.8 us). This hold lasts HOLD_S at most
too, then the backlog fills as before, so that a stall behind stuck records still ends in a
pause and rebalance callbacks wait no longer than at capacity. Not with key or partition order
one record at a time: what keeps the engine busy there is how many lanes have records, and
librdkafka returns records a partition at a time, so finding the keys takes a deep backlog
(measured, sleep 5 ms, 100 keys, 8 partitions: 0.50 of the bound with this hold, 0.89 without).
"""

from __future__ import annotations

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control import commits
from pyrallel_consumer.control.client import KafkaClient
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.tracker import Tracker

# At capacity, how long the loop stops polling before it pauses the partitions instead: the
# longest a rebalance callback waits for it, far below any max.poll.interval.ms.
HOLD_S = 1.0


class Backpressure:
    """Capacity = max_in_flight + backlog_size records, or backlog_max_bytes of backlog.
    Reads the partitions and the backlog's sizes from `tracker`."""

    def __init__(self, config: ConsumerConfig, tracker: Tracker) -> None:
        self._tracker = tracker
        self._capacity = config.max_in_flight + config.backlog_size
        self._max_bytes = config.backlog_max_bytes
        self._resume_mark = config.max_in_flight + config.backlog_size // 2
        self._full_since: float | None = None  # clock time capacity was reached, while held
        self.paused = False  # partitions paused for capacity
        # Enough records ready to take (module doc): a window's worth, where any records keep
        # the engine busy; None where it takes records of many lanes.
        self._ready_depth = (
            config.max_in_flight
            if config.ordering == "unordered" or config.batch_size is not None
            else None
        )
        self._ready_since: float | None = None  # clock time the backlog had enough ready

    def room(self, held: int, backlog_bytes: int) -> int:
        """Records that may still be received before `held` (in flight, in the backlog and
        being dead-lettered) reaches capacity; 0 when the backlog's bytes did."""
        if backlog_bytes >= self._max_bytes:
            return 0
        return self._capacity - held

    def apply(self, client: KafkaClient, held: int, now: float) -> int:
        """Hold, pause or resume for this loop turn (module docstring); the room left.
        `held`: records in flight, in the backlog and being dead-lettered."""
        backlog_bytes = self._tracker.backlog_bytes
        room = self.room(held, backlog_bytes)
        if self.paused:
            full = held > self._resume_mark or backlog_bytes > self._max_bytes // 2
        elif room > 0:
            self._full_since = None
            full = False
        else:
            if self._full_since is None:
                self._full_since = now
            full = now - self._full_since >= HOLD_S
        if full != self.paused:
            self._full_since = None
        self.paused = full
        to_pause: list[PartitionState] = []
        to_resume: list[PartitionState] = []
        for state in self._tracker.partitions.values():
            want = full or state.blocked
            if want != state.paused:
                (to_pause if want else to_resume).append(state)
        commits.set_paused(client, to_pause, True)
        commits.set_paused(client, to_resume, False)
        depth = self._ready_depth
        if depth is None or room <= 0 or full or self._tracker.backlog_ready < depth:
            self._ready_since = None
            return room
        if self._ready_since is None:
            self._ready_since = now
        return 0 if now - self._ready_since < HOLD_S else room
