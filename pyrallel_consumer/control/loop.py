"""The poll loop: poll -> receive -> submit -> apply reports -> commit -> pause/resume.

Ownership: everything here runs on the control thread (the one in `run`), including the
rebalance callbacks, which the client runs inside `consume`/`poll`/`close` on that thread.
`request_stop` and `stats` are the only methods meant for other threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from pyrallel_consumer.backlog import Backlog
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control import commits
from pyrallel_consumer.control.client import (
    PARTITION_EOF,
    ClientFactory,
    KafkaClient,
    KafkaErrorInfo,
    Message,
    TopicPartitionKey,
    confluent_client,
)
from pyrallel_consumer.control.completions import BUSY_WAIT_S, Clock, Completions, OnComplete
from pyrallel_consumer.control.dead_letter import DeadLetterPublisher, DeadLetterSink
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.rebalance import OnAssign, Rebalancer
from pyrallel_consumer.control.stats import Counters, snapshot
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.errors import KafkaFatalError
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem

log = logging.getLogger("pyrallel_consumer")

IDLE_POLL_S = 0.1  # poll() wait when nothing is in flight
# At capacity, how long the loop stops polling before it pauses the partitions instead: the
# longest a rebalance callback waits for it, far below any max.poll.interval.ms.
HOLD_S = 1.0


def default_dead_letters(config: ConsumerConfig) -> DeadLetterSink | None:
    if config.on_failure == "dead_letter" and config.dlq_topic:
        return DeadLetterPublisher(config.dlq_topic, config.kafka_config)
    return None


class ControlLoop:
    """Runs one consumer: builds the client with `client_factory` when `run` starts."""

    def __init__(
        self,
        config: ConsumerConfig,
        engine: Engine,
        on_complete: OnComplete | None = None,
        on_assign: OnAssign | None = None,
        clock: Clock = time.monotonic,
        client_factory: ClientFactory = confluent_client,
        dead_letters: DeadLetterSink | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self._on_assign = on_assign
        self._clock = clock
        self._client_factory = client_factory
        self._lane_of = lane_function(config.ordering)
        self._partitions: dict[TopicPartitionKey, PartitionState] = {}
        # The backlog: received, not in flight yet (waits for in-flight room, or for its lane
        # to be under max_in_flight_per_lane).
        self._backlog: Backlog[PartitionState] = Backlog(config.max_in_flight_per_lane)
        self._next_id = 0
        self._paused_for_capacity = False
        # Paused for capacity, the partitions resume once in-flight work plus the backlog
        # fell to this (see _apply_pauses).
        self._resume_mark = config.max_in_flight + config.backlog_size // 2
        self._full_since: float | None = None  # clock time capacity was reached, while held
        self._stop = threading.Event()
        self._failure: Exception | None = None
        self._fatal: KafkaErrorInfo | None = None
        self.counters = Counters()
        if dead_letters is None:
            dead_letters = default_dead_letters(config)
        self._completions = Completions(
            config,
            engine,
            self.counters,
            dead_letters,
            on_complete,
            self._fail,
            clock,
            self._backlog.done,
        )
        self._in_flight = self._completions.in_flight
        self._failures = self._completions.failures

    # ---- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def run(self, max_records: int | None, timeout: float | None) -> int:
        """Consume until `max_records` completed, `timeout` seconds passed or a stop was
        requested; then finish in-flight work, commit and close. Returns the records completed.
        Raises the failure that stopped it (ProcessingError, DeadLetterError) or
        KafkaFatalError."""
        deadline = None if timeout is None else self._clock() + timeout
        client = self._client_factory(self.config.kafka_config, self._on_kafka_error)
        rebalancer = Rebalancer(
            self.config,
            client,
            self._partitions,
            self._backlog,
            self._completions,
            self._clock,
            self._on_assign,
        )
        self.engine.start()
        try:
            client.subscribe(
                self.config.topics, rebalancer.assigned, rebalancer.revoked, rebalancer.lost
            )
            self._loop(client, max_records, deadline)
            self._shutdown(client)
        finally:
            try:
                commits.commit(client, self._partitions.values())
                client.close()  # runs the revoke callback: final synchronous commit
            finally:
                self._failures.flush(self.config.drain_timeout_s)
                self.engine.close(self.config.drain_timeout_s)
        if self._failure is not None:
            raise self._failure
        if self._fatal is not None:
            raise KafkaFatalError(f"librdkafka fatal error: {self._fatal.str()}")
        return self.counters.completed

    def _loop(self, client: KafkaClient, max_records: int | None, deadline: float | None) -> None:
        clock, engine, completions = self._clock, self.engine, self._completions
        next_commit = clock() + self.config.commit_interval_s
        batch = self.config.poll_batch_size
        while not self._stop.is_set():
            completions.apply(engine.reports())
            self._failures.poll()
            if max_records is not None and self.counters.completed >= max_records:
                return
            now = clock()
            if deadline is not None and now >= deadline:
                return
            self._submit_backlog()
            if now >= next_commit:
                commits.commit(client, self._partitions.values())
                commits.refresh_watermarks(client, self._partitions.values())
                next_commit = now + self.config.commit_interval_s
            room = self._room()
            self._apply_pauses(client, room, now)
            if room <= 0 and not self._paused_for_capacity:
                engine.wait(BUSY_WAIT_S)  # held: see _apply_pauses
                continue
            # Never more than there is room for, so that steady backpressure needs no pause.
            # consume() with a timeout waits for a *full* batch, so it is only ever called
            # with 0; poll() is the blocking call that returns on the first record.
            take = max(1, min(batch, room))
            messages = client.consume(take, 0)
            if not messages:
                if self._in_flight or self._paused_for_capacity:
                    engine.wait(BUSY_WAIT_S)
                    continue
                first = client.poll(IDLE_POLL_S)
                if first is None:
                    continue
                messages = [first, *client.consume(take - 1, 0)] if take > 1 else [first]
            self._receive(messages)

    def _shutdown(self, client: KafkaClient) -> None:
        """Stop taking records; let in-flight work finish within drain_timeout_s."""
        self._backlog.clear()
        commits.set_paused(client, [s for s in self._partitions.values() if not s.paused], True)
        failures = self._failures
        self._completions.settle(
            lambda: bool(self._in_flight) or failures.dead_lettering > 0,
            self._clock() + self.config.drain_timeout_s,
            serve=lambda: client.consume(1, 0),  # rebalance callbacks; everything is paused
        )
        if self._in_flight:
            log.warning(
                "shutdown: %d records still in flight after drain_timeout_s=%.1f; they are not "
                "committed and will be consumed again",
                len(self._in_flight),
                self.config.drain_timeout_s,
            )

    # ---- records in ------------------------------------------------------------------------

    def _receive(self, messages: Sequence[Message]) -> None:
        received_at = self._clock()
        partitions: dict[Any, PartitionState] = self._partitions  # looked up by plain tuples
        lane_of = self._lane_of
        backlog = self._backlog
        counters = self.counters
        for message in messages:
            error = message.error()
            if error is not None:
                self._on_kafka_error(error)
                continue
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            state = partitions.get((topic, partition))
            if state is None:
                continue  # revoked while the message was queued; the new owner consumes it
            if not state.receive(offset):
                counters.already_completed += 1
                continue
            _, timestamp = message.timestamp()
            record = Record(
                topic,
                partition,
                offset,
                message.key(),
                message.value(),
                message.headers(),
                timestamp,
            )
            self._next_id += 1
            backlog.add(WorkItem(self._next_id, lane_of(record), record, state, received_at))
        counters.received += len(messages)
        for state in partitions.values():
            state.check_fit()
        self._submit_backlog()

    def _submit_backlog(self) -> None:
        room = self.config.max_in_flight - len(self._in_flight) - self._failures.dead_lettering
        if room <= 0 or not self._backlog:
            return
        in_flight = self._in_flight
        items = self._backlog.take(room)
        if not items:
            return  # every lane with records is at its cap
        for item in items:
            in_flight[item.id] = item
        self.engine.submit(items)

    # ---- backpressure ----------------------------------------------------------------------

    def _room(self) -> int:
        """Records that may still be received before in-flight work plus the backlog reaches
        capacity (0 when the backlog's bytes did)."""
        config, backlog = self.config, self._backlog
        if backlog.bytes >= config.backlog_max_bytes:
            return 0
        held = len(self._in_flight) + len(backlog) + self._failures.dead_lettering
        return config.max_in_flight + config.backlog_size - held

    def _apply_pauses(self, client: KafkaClient, room: int, now: float) -> None:
        """Backpressure in two steps, and a blocked partition (its commit metadata would not
        fit) paused until its gap closes.

        At capacity the loop first holds: it stops taking records from the client, whose
        prefetched records wait there, for up to HOLD_S. Only when no room frees up in that
        time are the partitions paused, so that the loop can poll again (rebalance callbacks
        run inside poll); they resume once in-flight work plus the backlog fell to the resume
        mark, half the backlog below capacity.

        Why not pause at once, as before: librdkafka drops a paused partition's prefetched
        records and refetches them only 0.5-1 s after resume (its fetcher is not woken by a
        resume), so the engine starved after every pause (measured: 1,480 records/s instead
        of 3,060 with backlog_size=1000); resuming at a lower mark alone did not help."""
        config = self.config
        if self._paused_for_capacity:
            held = len(self._in_flight) + len(self._backlog) + self._failures.dead_lettering
            full = held > self._resume_mark or self._backlog.bytes > config.backlog_max_bytes // 2
        elif room > 0:
            self._full_since = None
            full = False
        else:
            if self._full_since is None:
                self._full_since = now
            full = now - self._full_since >= HOLD_S
        if full != self._paused_for_capacity:
            self._full_since = None
        self._paused_for_capacity = full
        to_pause: list[PartitionState] = []
        to_resume: list[PartitionState] = []
        for state in self._partitions.values():
            want = full or state.blocked
            if want != state.paused:
                (to_pause if want else to_resume).append(state)
        commits.set_paused(client, to_pause, True)
        commits.set_paused(client, to_resume, False)

    # ---- errors and stats ------------------------------------------------------------------

    def _fail(self, error: Exception) -> None:
        if self._failure is None:
            self._failure = error
        self._stop.set()

    def _on_kafka_error(self, error: KafkaErrorInfo) -> None:
        if error.fatal():
            self._fatal = error
            self._stop.set()
        elif error.code() != PARTITION_EOF:
            log.warning("kafka: %s", error.str())

    def stats(self) -> dict[str, Any]:
        return snapshot(
            self.counters,
            self._partitions,
            self._in_flight,
            self._backlog,
            self._failures.dead_lettering,
            self.engine.describe(),
        )
