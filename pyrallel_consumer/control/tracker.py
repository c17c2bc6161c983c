"""The record state of one run, in one owner: the partitions assigned, the backlog, the work in
flight.

A record's way through the control plane: `receive` (a poll batch, in one pass by intake.py: its
partition state records the offset, its lane is computed, it joins the backlog) -> `take` (handed
to the engine: in flight) -> `settle_all` (the engine's reports arrived: no longer in flight,
their lanes' caps make room). `detach` takes revoked partitions out of all three at once. The
loop, the rebalancer and the completions call these methods; nothing else reads or writes the
maps, so what "in flight" means is decided here alone.

Ownership: the control thread (the poll loop, and the rebalance callbacks librdkafka runs inside
its consume/poll/close calls on that thread). No lock: no other thread touches it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

from pyrallel_consumer.backlog import Backlog
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.client import Message
from pyrallel_consumer.control.in_flight import dispatch, settle
from pyrallel_consumer.control.intake import OnError, intake
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.topic_partition import TopicPartition
from pyrallel_consumer.work import WorkItem

Item = WorkItem[PartitionState]


class Tracker:
    """Partitions, backlog and in-flight work of one consumer (module doc).

    `partitions` is readable by the loop (commits, stats, the end of a run); only `attach` and
    `detach` change it. Counts: `in_flight` (handed to the engine, no report applied),
    `backlog` (received, not handed over) and `backlog_bytes` (their keys and values).
    """

    __slots__ = (
        "_backlog",
        "_counters",
        "_in_flight",
        "_lanes_released",
        "_next_id",
        "_ordering",
        "_unstarted",
        "first_offsets",
        "partitions",
    )

    def __init__(self, config: ConsumerConfig, counters: Counters) -> None:
        self.partitions: dict[TopicPartition, PartitionState] = {}
        # Per-lane cap (backlog.py): a stuck key holds at most this many in-flight slots.
        self._backlog: Backlog[PartitionState] = Backlog(config.max_in_flight_per_lane)
        self._in_flight: dict[int, Item] = {}  # by work item id
        # Ids of items in flight whose lane slots were given back early (release_lanes).
        self._lanes_released: set[int] = set()
        self._ordering = config.ordering
        self._counters = counters  # received and already_completed are counted here
        self._next_id = 0
        # The first offset received under each assignment that found nothing committed: where
        # a rewind (exactly once, after an aborted transaction) goes back to for it.
        self.first_offsets: dict[TopicPartition, int] = {}
        self._unstarted: list[PartitionState] = []  # such states, no record received yet

    # ---- sizes -----------------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    @property
    def backlog(self) -> int:
        return len(self._backlog)

    @property
    def backlog_ready(self) -> int:
        """Records of the backlog a take could hand out now (backlog.py's `ready`)."""
        return self._backlog.ready

    @property
    def backlog_bytes(self) -> int:
        return self._backlog.bytes

    # ---- partitions ------------------------------------------------------------------------

    def attach(self, states: Sequence[PartitionState]) -> None:
        """Start tracking newly assigned partitions (one new state per assignment)."""
        for state in states:
            self.partitions[TopicPartition(state.topic, state.partition)] = state
            if state.committed is None:
                self._unstarted.append(state)

    def detach(self, keys: Sequence[TopicPartition]) -> list[PartitionState]:
        """Stop tracking these partitions: their backlog is dropped (counted cancelled: never
        started here) and their work in flight cancelled where it has not started (engines
        report it CANCELLED). Returns their states, for the commit and the fencing that
        follow."""
        states = [s for key in keys if (s := self.partitions.pop(key, None))]
        for key in keys:
            self.first_offsets.pop(key, None)
        if states:
            self._unstarted = [s for s in self._unstarted if s not in states]
            detached = set(map(id, states))
            queued = len(self._backlog)
            self._backlog.remove_if(lambda item: id(item.owner) in detached)
            self._counters.cancelled += queued - len(self._backlog)
            for item in self._in_flight.values():
                if id(item.owner) in detached:
                    item.cancelled = True
        return states

    def busy_with(self, states: Collection[PartitionState]) -> bool:
        """Whether any work of these partitions is in flight."""
        ids = set(map(id, states))
        return any(id(item.owner) in ids for item in self._in_flight.values())

    # ---- records in and out ----------------------------------------------------------------

    def receive(self, messages: Sequence[Message], received_at: float, on_error: OnError) -> None:
        """Track one poll batch in one pass: errors go to `on_error` (they are events, not
        records: not counted as received); records of partitions no longer assigned are
        dropped (their new owner consumes them); records the commit metadata lists as
        completed are counted and skipped; the rest join the backlog. Then each partition
        checks its commit metadata bound (partition_state.py)."""
        errors = 0

        def counted(error: Any) -> None:  # a message's KafkaError (intake.OnError)
            nonlocal errors
            errors += 1
            on_error(error)

        self._next_id, skipped = intake(
            messages,
            self.partitions,
            self._ordering,
            self._backlog,
            self._next_id,
            received_at,
            counted,
        )
        self._counters.received += len(messages) - errors
        self._counters.already_completed += skipped
        if self._unstarted:
            self._note_first_offsets()
        for state in self.partitions.values():
            state.check_fit()

    def _note_first_offsets(self) -> None:
        """Right after a receive, before any of its records can complete, the position of a
        state that just received its first records is the first offset it received."""
        waiting = []
        for state in self._unstarted:
            position = state.position
            if position is None:
                waiting.append(state)
            else:
                self.first_offsets[TopicPartition(state.topic, state.partition)] = position
        self._unstarted = waiting

    def take(self, room: int, now: float) -> list[Item]:
        """Up to `room` records of the backlog, round-robin across lanes and within their
        caps, now in flight (dispatched at `now`)."""
        items = self._backlog.take(room)
        dispatch(items, self._in_flight, now)
        return items

    def in_flight_items(self, item_ids: Iterable[int]) -> list[Item]:
        """The items of `item_ids` still in flight, left in flight (outputs.py holds records
        there until their outputs are acknowledged)."""
        get = self._in_flight.get
        return [item for item_id in item_ids if (item := get(item_id)) is not None]

    def in_flight_item(self, item_id: int) -> Item | None:
        """`in_flight_items` of one id: the item, or None."""
        return self._in_flight.get(item_id)

    def release_lanes(self, items: Iterable[Item]) -> None:
        """These items' handler calls ended but they stay in flight (their outputs are being
        written, outputs.py): their lanes may start their next records now. The order of a
        lane's outputs does not need the slot: they are written in the order the lane's
        records reported. An item redone after this runs without a lane slot."""
        released, done = self._lanes_released, self._backlog.done
        for item in items:
            if item.id not in released:
                released.add(item.id)
                done(item.lane)

    def settle(self, item_id: int) -> Item | None:
        """`settle_all` of one item: the item, or None when it was not in flight."""
        items = settle((item_id,), self._in_flight, self._lanes_released, self._backlog)
        return items[0] if items else None

    def settle_all(self, item_ids: Iterable[int]) -> list[Item]:
        """The engine reported on these items: no longer in flight, and their lanes may take
        other records. Returns the items that were in flight (one reported twice, or after
        `abandon`, is left out)."""
        return settle(item_ids, self._in_flight, self._lanes_released, self._backlog)

    def give_up(self) -> int:
        """The run ended: drop the backlog and the work still in flight (never committed;
        whoever consumes its partitions next redoes it). Returns how many were in flight."""
        count = len(self._in_flight)
        self._drop_backlog()
        self._in_flight.clear()
        self._lanes_released.clear()
        return count

    def abandon(self) -> None:
        """The run stops: drop the backlog and cancel the work not started."""
        self._drop_backlog()
        for item in self._in_flight.values():
            item.cancelled = True

    def _drop_backlog(self) -> None:
        """Drop every queued record, counted cancelled (never started here; whoever consumes
        its partition next handles it)."""
        self._counters.cancelled += len(self._backlog)
        self._backlog.clear()
