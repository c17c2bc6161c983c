"""The poll loop: poll -> receive -> submit -> apply reports -> commit -> pause/resume.

Ownership: everything here runs on the control thread (the one in `run`), including the
rebalance callbacks, which the client runs inside `consume`/`poll`/`close` on that thread.
`request_stop` and `stats` are the only methods meant for other threads: `stats` returns a
copy of the snapshot the control thread publishes (control/stats.py), never live state.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control import commits, session
from pyrallel_consumer.control.backpressure import Backpressure
from pyrallel_consumer.control.callbacks import Callback
from pyrallel_consumer.control.client import ClientFactory, KafkaClient, Message, confluent_client
from pyrallel_consumer.control.dead_letter import DeadLetterSink
from pyrallel_consumer.control.kafka_errors import KafkaErrors
from pyrallel_consumer.control.kafka_log import RepeatLimiter
from pyrallel_consumer.control.output_sink import OutputSink
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.rebalance import OnAssign, OnRevoke, Rebalancer
from pyrallel_consumer.control.reports import BUSY_WAIT_S, Clock, OnComplete, ReportHandler
from pyrallel_consumer.control.run_end import RunEnd
from pyrallel_consumer.control.stats import Counters, Stats, snapshot
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.control.transaction_commits import TransactionalCommitter
from pyrallel_consumer.control.transactions import TransactionalProducer
from pyrallel_consumer.control.writers import (
    Committing,
    committer_for,
    default_dead_letters,
    default_outputs,
    transactional_producer,
)
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.faults import Faults
from pyrallel_consumer.topic_partition import TopicPartition

log = logging.getLogger("pyrallel_consumer")

IDLE_POLL_S = 0.1  # poll() wait when nothing is in flight
# How often the control thread publishes the stats() snapshot (also after every commit and at
# the end of run): building it costs microseconds per partition, too much for every turn.
STATS_INTERVAL_S = 0.1
READY_POLL_S = 0.1  # the start-up wait for the engine (Engine.wait_ready), in slices of this
SLOW_START_SLICES = 50  # ... logged once when it reaches this many (5 s)
# What a commit refused during the loop leads to.
RETRIED_NEXT_INTERVAL = "retried at the next commit interval"
RETRIED_AT_CLOSE = "retried once more as the consumer closes (its last commit)"


class ControlLoop:
    """Runs one consumer: builds the client with `client_factory` when `run` starts."""

    def __init__(
        self,
        config: ConsumerConfig,
        engine: Engine,
        on_complete: OnComplete | None = None,
        on_assign: OnAssign | None = None,
        on_revoke: OnRevoke | None = None,
        clock: Clock = time.monotonic,
        client_factory: ClientFactory = confluent_client,
        dead_letters: DeadLetterSink | None = None,
        output_sink: OutputSink | None = None,
        transactions: TransactionalProducer | None = None,
    ) -> None:
        """`dead_letters`, `output_sink` and `transactions` replace what the settings would
        build (control/writers.py): the dead-letter and output sinks, exactly once's
        transactional producer."""
        self.config = config
        self.engine = engine
        self._clock = self.clock = clock
        self._client_factory = client_factory
        self._wait_bound_s = session.wait_bound_s(config.kafka_config)  # ValueError if invalid
        # A plain flag, not an Event: one store is atomic with or without the GIL, and safe in
        # a signal handler, where Event.set could deadlock on the Event's own lock if the signal
        # arrived while this thread was inside an Event.set. Only read, never waited on.
        self._stop_requested = False
        self._hurry = False  # a second stop asked not to wait for the records running
        # The one error path: whatever fails, from any thread or callback, is parked here and
        # raised by run() once the consumer closed (faults.py).
        self._faults = Faults(self.request_stop)
        self.counters = Counters()
        # Partitions, backlog and work in flight: the record state, in one owner.
        self._tracker = Tracker(config, self.counters)
        self._partitions = self._tracker.partitions
        self._backpressure = Backpressure(config, self._tracker)
        self._on_kafka_error = KafkaErrors(config.kafka_config, self._faults, clock)
        self._slow_callbacks = RepeatLimiter(clock=clock)
        self._on_assign = self._callback("on_assign", on_assign)
        self._on_revoke = self._callback("on_revoke", on_revoke)
        # Exactly once: one transactional producer for outputs, dead letters and offsets.
        self._transactions = transactions or transactional_producer(config, self._on_kafka_error)
        if dead_letters is None:
            dead_letters = default_dead_letters(config, self._on_kafka_error, self._transactions)
        self._reports = ReportHandler(
            config,
            engine,
            self._tracker,
            self.counters,
            dead_letters,
            self._callback("on_complete", on_complete),
            self._faults,
            clock,
            self._publish_due,
            output_sink
            or default_outputs(config, self.counters, self._on_kafka_error, self._transactions),
        )
        # run(max_records=N): how many records may still be handed to the engine.
        self._submit_limit: int | None = None
        self._failures = self._reports.failures
        self._control_thread: int | None = None  # the thread in run(), while it runs
        # Partitions whose records the shutdown drain consumed without handling them.
        self._dropped: set[tuple[str, int]] = set()
        # The shutdown's one deadline: its drain, then closing the writers and the engine.
        self._close_by: float | None = None
        self._next_publish = 0.0
        self._published = self._snapshot(self._partitions)

    # ---- lifecycle -------------------------------------------------------------------------

    def _await_engine(self, deadline: float | None) -> None:
        """Join the group only once the engine can run records (Engine.wait_ready), so a
        member whose process workers are still importing does not hold partitions idle.
        Stops waiting on request_stop or the run's deadline; says so when it takes long."""
        slices = 0
        while not self.engine.wait_ready(READY_POLL_S):
            if self._stop_requested or (deadline is not None and self._clock() >= deadline):
                return
            slices += 1
            if slices == SLOW_START_SLICES:
                log.info("still waiting for engine=%r to start its workers", self.engine.name)

    def request_stop(self, repeat_hurries: bool = False) -> None:
        """Ask the loop to stop at its next turn: from any thread, a signal handler included.
        With `repeat_hurries` (the user's stop(), a signal), a second request ends the
        shutdown drain at once: the records still running are not waited for."""
        if repeat_hurries and self._stop_requested:
            self._hurry = True
        self._stop_requested = True

    def run(self, max_records: int | None, timeout: float | None, end: RunEnd | None = None) -> int:
        """Consume until `max_records` completed, `timeout` seconds passed, `end` says the
        input is exhausted or a stop was requested; then let the running records finish (the
        others are cancelled), commit and close. At most `max_records` records are handed to
        the handler. Returns the records completed. Raises the first failure parked
        (errors.py: ProcessingError, HandlerExit, DeadLetterError, CallbackError, EngineError,
        CommitError, KafkaFatalError, ...).

        Every resource (the client, the engine's threads and processes, the dead-letter
        producer) is built here and released before it returns, whatever failed."""
        deadline = None if timeout is None else self._clock() + timeout
        self._submit_limit = max_records
        self._control_thread = threading.get_ident()
        client: KafkaClient | None = None
        rebalancer: Rebalancer | None = None
        last_assignment = self._partitions  # replaced by the copy taken before close()
        shut_down = engine_started = False
        try:
            client = self._client_factory(self.config.kafka_config, self._on_kafka_error)
            committer = committer_for(
                client, self._faults, self._tracker, self.counters, self._transactions
            )
            self._committer: Committing = committer
            rebalancer = Rebalancer(
                self.config,
                client,
                committer,
                self._faults,
                self._tracker,
                self._reports,
                self._clock,
                self._on_assign,
                self._on_revoke,
                self._wait_bound_s,
            )
            if isinstance(committer, TransactionalCommitter):
                committer.on_abort = rebalancer.rewind
                if self._reports.outputs is not None:
                    committer.on_flushed = self._reports.outputs.settle_answered
            self._reports.start()
            self.engine.start()
            engine_started = True
            self._await_engine(deadline)
            client.subscribe(
                self.config.topics, rebalancer.assigned, rebalancer.revoked, rebalancer.lost
            )
            self._loop(client, max_records, deadline, end)
            if not self._faults.fatal:
                self._shutdown(client)
            shut_down = True
        finally:
            try:
                if self._faults.fatal:
                    self._abandon()
                if client is not None and rebalancer is not None:
                    if not shut_down:  # an error ended the loop: commit what completed
                        committer.commit(self._partitions.values(), RETRIED_AT_CLOSE)
                    last_assignment = dict(self._partitions)
                    # After an error, the revoke still gives a grace (none after a fatal one).
                    rebalancer.closing = shut_down or self._faults.fatal
                if client is not None:
                    client.close()  # runs the revoke callback: it commits, no second wait
            finally:
                close_by = self._close_by or self._clock() + self.config.drain_timeout_s
                self._reports.close(max(0.0, close_by - self._clock()))
                if engine_started:  # else a failure before it started is what run() raises
                    self.engine.close(max(0.0, close_by - self._clock()))
                # The final state stays readable: the last assignment's partitions, revoked;
                # what was left in flight is given up (abandoned), nothing more comes of it.
                self.counters.abandoned += self._tracker.give_up()
                self._published = self._snapshot(last_assignment)
                self._control_thread = None
        if self._faults.first is not None:
            self._faults.log_unlogged()
            raise self._faults.first
        return self.counters.completed

    def _abandon(self) -> None:
        """The run stops: start nothing more. Records not started are cancelled (Engine.abandon:
        engines, process workers too, report them so), the backlog dropped; none is committed."""
        self._tracker.abandon()
        self.engine.abandon()

    def _loop(
        self,
        client: KafkaClient,
        max_records: int | None,
        deadline: float | None,
        end: RunEnd | None,
    ) -> None:
        clock, engine, reports = self._clock, self.engine, self._reports
        next_commit = clock() + self.config.commit_interval_s
        batch = self.config.poll_batch_size
        while not self._stop_requested:
            reports.apply(reports.collect())
            reports.poll()
            if max_records is not None and self.counters.completed >= max_records:
                return
            now = clock()
            if deadline is not None and now >= deadline:
                return
            if end is not None and end.reached(
                client,
                self._partitions,
                self.counters.received,
                bool(self._held()),
            ):
                # Exactly once: the end counts once it is committed. A transaction that
                # aborts instead rewound the partitions below it: their records are redone.
                if not isinstance(self._committer, TransactionalCommitter) or self._commit(
                    client, RETRIED_AT_CLOSE
                ):
                    return
                continue
            self._submit_backlog()
            if now >= next_commit:
                self._commit(client, RETRIED_NEXT_INTERVAL)
                next_commit = now + self.config.commit_interval_s
            elif now >= self._next_publish:
                self._publish(now)
            room = self._backpressure.apply(client, self._held(), now)
            if room <= 0 and not self._backpressure.paused:
                engine.wait(BUSY_WAIT_S)  # held: see control/backpressure.py
                continue
            # Never more than there is room for, so that steady backpressure needs no pause.
            # consume() with a timeout waits for a *full* batch, so it is only ever called
            # with 0; poll() is the blocking call that returns on the first record.
            take = max(1, min(batch, room))
            messages = client.consume(take, 0)
            if not messages:
                if self._tracker.in_flight or self._backpressure.paused:
                    engine.wait(BUSY_WAIT_S)
                    continue
                first = client.poll(IDLE_POLL_S)
                if first is None:
                    continue
                messages = [first, *client.consume(take - 1, 0)] if take > 1 else [first]
            self._receive(messages)

    def _commit(self, client: KafkaClient, then: str) -> bool:
        """A commit from the poll loop or the shutdown, between consume calls: advancing idle
        partitions to the consumer's position is safe there, except for partitions whose
        records the shutdown drain consumed and dropped (`_dropped`). Publishes stats around
        it, so the positions it found show before the broker has the commit."""
        partitions = self._partitions.values()
        dropped = self._dropped
        commits.advance_idle(
            client, [s for s in partitions if (s.topic, s.partition) not in dropped]
        )
        commits.refresh_watermarks(client, partitions)
        self._publish(self._clock())
        done = self._committer.commit(partitions, then)
        self._publish(self._clock())
        return done

    def _shutdown(self, client: KafkaClient) -> None:
        """Stop taking records; cancel those not started (`_abandon`: never run, so whoever
        consumes their partitions next runs them once, and the stop waits for no queue);
        commit what completed; let the running records finish within drain_timeout_s,
        committing on the usual interval (the drain keeps polling, so the group membership
        holds however long it lasts), or until a second stop request; commit again."""
        commits.set_paused(client, [s for s in self._partitions.values() if not s.paused], True)
        failures, clock, interval = self._failures, self._clock, self.config.commit_interval_s
        tracker = self._tracker
        self._abandon()
        self._close_by = clock() + self.config.drain_timeout_s
        if tracker.in_flight or failures.dead_lettering:
            log.info(
                "stopping: waiting up to drain_timeout_s=%.1f for %d records in flight; stop "
                "again (a second Ctrl-C) to stop waiting (they are then not committed)",
                self.config.drain_timeout_s,
                tracker.in_flight,
            )
            self._commit(client, "retried during the shutdown drain")
            next_commit = clock() + interval

            def serve() -> None:
                nonlocal next_commit
                # Serves rebalance callbacks. Everything assigned is paused, but a partition
                # assigned during the drain is not: its records are dropped, never handled.
                for message in client.consume(1, 0):
                    if message.error() is None:
                        self._dropped.add((message.topic(), message.partition()))
                if clock() >= next_commit:
                    self._commit(client, "retried during the shutdown drain")
                    next_commit = clock() + interval

            self._reports.settle(
                lambda: not self._hurry and (tracker.in_flight > 0 or failures.dead_lettering > 0),
                self._close_by,
                serve=serve,
            )
        waited = f"drain_timeout_s={self.config.drain_timeout_s:.1f}"
        if self._hurry:
            self._close_by = clock()  # the engine's close waits for nothing either
            waited = "a second stop request"
        if tracker.in_flight:
            log.warning(
                "shutdown: %d records still in flight after %s are not committed; whoever "
                "consumes their partitions next redoes them",
                tracker.in_flight,
                waited,
            )
        self._commit(client, RETRIED_AT_CLOSE)

    # ---- records in ------------------------------------------------------------------------

    def _receive(self, messages: Sequence[Message]) -> None:
        self._tracker.receive(messages, self._clock(), self._on_kafka_error)
        self._submit_backlog()

    def _submit_backlog(self) -> None:
        held = self._held_by_engine()
        room = self.config.max_in_flight - held
        limit = self._submit_limit
        if limit is not None:  # run(max_records=N): never more than N handed to the handler
            room = min(room, limit - self.counters.completed - held)
        if room <= 0 or not self._tracker.backlog or self._stop_requested:
            return
        items = self._tracker.take(room, self._clock())
        if items:  # else every lane with records is at its cap
            self.engine.submit(items)

    def _held_by_engine(self) -> int:
        """Records handed over and not completed yet: in flight or being dead-lettered."""
        return self._tracker.in_flight + self._failures.dead_lettering

    def _held(self) -> int:
        """Records held in memory: in flight, in the backlog and being dead-lettered."""
        return self._held_by_engine() + self._tracker.backlog

    # ---- errors and stats ------------------------------------------------------------------

    def _callback(self, name: str, function: OnAssign | OnComplete | None) -> Callback[Any] | None:
        if function is None:
            return None
        return Callback(name, function, self._faults, self._clock, self._slow_callbacks)

    def _publish_due(self) -> None:
        now = self._clock()
        if now >= self._next_publish:
            self._publish(now)

    def _publish(self, now: float) -> None:
        self._published = self._snapshot(self._partitions)
        self._next_publish = now + STATS_INTERVAL_S

    def _snapshot(self, partitions: dict[TopicPartition, PartitionState]) -> Stats:
        return snapshot(
            (self.config.engine, self.config.ordering),
            self.counters,
            partitions,
            self._partitions,
            self._tracker.in_flight,
            self._tracker.backlog,
            self._failures.dead_lettering,
            self.engine.describe(),
            self.engine.counters(),
        )

    def stats(self) -> Stats:
        """The control thread's latest snapshot (at most STATS_INTERVAL_S old while running;
        the final state after run returned). On the control thread itself, e.g. inside
        `on_complete`, a fresh one. Safe from any thread."""
        if threading.get_ident() == self._control_thread:
            return self._snapshot(self._partitions)
        return copy.deepcopy(self._published)  # callers may change theirs; others keep theirs
