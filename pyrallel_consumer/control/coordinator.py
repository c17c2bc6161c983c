"""The poll loop: polls Kafka in batches, hands records to the engine, tracks completions,
commits, pauses and resumes partitions, and handles rebalances.

Ownership: everything here is read and written by the control thread (the one in `run`),
including the rebalance callbacks, which librdkafka runs inside `consume()` on that thread.
`request_stop` and `stats` are the only methods meant for other threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control import offset_metadata
from pyrallel_consumer.control.backlog import Backlog
from pyrallel_consumer.control.dead_letter import DeadLetterPublisher
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.engines.base import FAILED, OK, SKIPPED, Done, Engine, WorkItem
from pyrallel_consumer.errors import DeadLetterError, KafkaFatalError, ProcessingError
from pyrallel_consumer.ordering import lane_function
from pyrallel_consumer.record import Record

log = logging.getLogger("pyrallel_consumer")

TP = tuple[str, int]
OnComplete = Callable[[Completion], None]
OnAssign = Callable[[list[TP]], None]

IDLE_POLL_S = 0.1  # consume() wait when nothing is in flight
BUSY_WAIT_S = 0.02  # wait for completions when Kafka had nothing new
COMMITTED_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Counters:
    """Totals since start; written by the control thread, read by stats()."""

    received: int = 0
    completed: int = 0
    retries: int = 0
    failed: int = 0
    dead_lettered: int = 0
    skipped: int = 0  # cancelled on revoke before they started
    skipped_from_metadata: int = 0  # completed before a restart, per the commit metadata
    fenced: int = 0  # reported after their partition was revoked

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class Coordinator:
    def __init__(
        self,
        config: ConsumerConfig,
        engine: Engine,
        on_complete: OnComplete | None = None,
        on_assign: OnAssign | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.engine = engine
        self._on_complete = on_complete
        self._on_assign = on_assign
        self._clock = clock
        self._lane_of = lane_function(config.ordering)
        self._partitions: dict[TP, PartitionState] = {}
        self._in_flight: dict[int, WorkItem] = {}  # submitted to the engine, not reported yet
        self._backlog = Backlog()  # received, waiting for in-flight room
        self._dead_lettering = 0  # failed records whose dead letter is not acknowledged yet
        self._next_id = 0
        self._epoch = 0
        self._paused_for_capacity = False
        self._stop = threading.Event()
        self._failure: Exception | None = None
        self._fatal: KafkaError | None = None
        self.counters = Counters()
        self._consumer: Consumer | None = None
        self._dead_letters = (
            DeadLetterPublisher(config.dlq_topic, config.kafka_config)
            if config.on_failure == "dead_letter" and config.dlq_topic
            else None
        )

    # ---- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    def run(self, max_records: int | None, timeout: float | None) -> int:
        """Consume until `max_records` completed, `timeout` passed or a stop was requested;
        then drain in-flight work, commit and close. Returns the records completed."""
        deadline = None if timeout is None else self._clock() + timeout
        kafka_config = dict(self.config.kafka_config)
        kafka_config["error_cb"] = self._on_kafka_error
        consumer = Consumer(kafka_config)
        self._consumer = consumer
        self.engine.start()
        try:
            consumer.subscribe(
                list(self.config.topics),
                on_assign=self._assigned,
                on_revoke=self._revoked,
                on_lost=self._lost,
            )
            self._loop(consumer, max_records, deadline)
            self._drain(consumer)
        finally:
            try:
                self._commit(consumer)
                consumer.close()  # runs the revoke callback: final synchronous commit
            finally:
                if self._dead_letters is not None:
                    self._dead_letters.flush(self.config.drain_timeout_s)
                self.engine.close(self.config.drain_timeout_s)
                self._consumer = None
        if self._failure is not None:
            raise self._failure
        if self._fatal is not None:
            raise KafkaFatalError(f"librdkafka fatal error: {self._fatal.str()}")
        return self.counters.completed

    def _loop(self, consumer: Consumer, max_records: int | None, deadline: float | None) -> None:
        clock = self._clock
        next_commit = clock() + self.config.commit_interval_s
        per_turn = self.engine.records_per_turn
        batch = (
            min(per_turn, self.config.poll_batch_size) if per_turn else self.config.poll_batch_size
        )
        while not self._stop.is_set():
            self._handle(self.engine.drain())
            if self._dead_letters is not None:
                self._dead_letters.poll()
            if max_records is not None and self.counters.completed >= max_records:
                return
            now = clock()
            if deadline is not None and now >= deadline:
                return
            self._submit_backlog()
            if now >= next_commit:
                self._commit(consumer)
                self._refresh_watermarks(consumer)
                next_commit = now + self.config.commit_interval_s
            self._apply_pauses(consumer)
            # consume() with a timeout waits for a *full* batch, so it is only ever called
            # with 0; poll() is the blocking call that returns on the first record.
            messages = consumer.consume(batch, 0)
            if not messages:
                if self._in_flight or self._paused_for_capacity:
                    self.engine.wait(BUSY_WAIT_S)
                    continue
                first = consumer.poll(IDLE_POLL_S)
                if first is None:
                    continue
                messages = [first, *consumer.consume(batch - 1, 0)] if batch > 1 else [first]
            self._receive(messages)

    def _drain(self, consumer: Consumer) -> None:
        """Stop taking records; let in-flight work finish within drain_timeout_s."""
        self._backlog.clear()
        self._pause_all(consumer)
        deadline = self._clock() + self.config.drain_timeout_s
        while (self._in_flight or self._dead_lettering) and self._clock() < deadline:
            self.engine.wait(BUSY_WAIT_S)
            self._handle(self.engine.drain())
            if self._dead_letters is not None:
                self._dead_letters.poll()
            consumer.consume(1, 0)  # serve rebalance callbacks; everything is paused
        if self._in_flight:
            log.warning(
                "shutdown: %d records still in flight after drain_timeout_s=%.1f; they are not "
                "committed and will be consumed again",
                len(self._in_flight),
                self.config.drain_timeout_s,
            )

    # ---- records in ------------------------------------------------------------------------

    def _receive(self, messages: list[Any]) -> None:
        received_at = self._clock()
        partitions = self._partitions
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
                counters.skipped_from_metadata += 1
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
        room = self.config.max_in_flight - len(self._in_flight) - self._dead_lettering
        if self.engine.records_per_turn is not None:
            room = min(room, self.engine.records_per_turn)
        if room <= 0 or not self._backlog:
            return
        in_flight = self._in_flight
        items = self._backlog.take(room)
        for item in items:
            in_flight[item.id] = item
        self.engine.submit(items)

    # ---- completions -----------------------------------------------------------------------

    def _handle(self, reports: list[Done]) -> None:
        in_flight, counters = self._in_flight, self.counters
        for done in reports:
            item = in_flight.pop(done.id, None)
            if item is None:
                continue
            state: PartitionState = item.owner
            if state.revoked:  # its partition moved on; the new owner redoes it
                if done.status == SKIPPED:
                    counters.skipped += 1
                else:
                    counters.fenced += 1
                continue
            if done.attempts > 1:
                counters.retries += done.attempts - 1
            if done.status == OK:
                self._finish(item, done, ok=True)
            elif done.status == FAILED:
                self._failed(item, done)
            else:
                counters.skipped += 1  # cancelled on revoke; never committed past

    def _finish(self, item: WorkItem, done: Done, ok: bool) -> None:
        record = item.record
        item.owner.complete(record.offset)
        self.counters.completed += 1
        if self._on_complete is not None:
            self._on_complete(
                Completion(
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    item.received_at,
                    done.completed_at,
                    done.attempts,
                    ok,
                    done.error,
                )
            )

    def _failed(self, item: WorkItem, done: Done) -> None:
        record = item.record
        error = done.error or "unknown error"
        self.counters.failed += 1
        policy = self.config.on_failure
        if policy == "skip":
            log.warning("skipping %r after %d attempts: %s", record, done.attempts, error)
            self._finish(item, done, ok=False)
        elif policy == "dead_letter" and self._dead_letters is not None:
            self._dead_lettering += 1

            def delivered(err: KafkaError | None) -> None:
                self._dead_lettering -= 1
                if err is not None:
                    self._fail(
                        DeadLetterError(
                            f"could not write {record!r} to dead-letter topic "
                            f"{self.config.dlq_topic!r}: {err.str()}; it stays uncommitted"
                        )
                    )
                elif not item.owner.revoked:
                    self.counters.dead_lettered += 1
                    self._finish(item, done, ok=False)

            self._dead_letters.publish(record, error, done.attempts, delivered)
        else:
            self._fail(
                ProcessingError(record.topic, record.partition, record.offset, done.attempts, error)
            )

    def _fail(self, error: Exception) -> None:
        if self._failure is None:
            self._failure = error
        self._stop.set()

    # ---- commits and pauses ----------------------------------------------------------------

    def _refresh_watermarks(self, consumer: Consumer) -> None:
        """Cache high watermarks for stats(): librdkafka calls from another thread were seen
        to block for over a minute during a rebalance, so stats() only reads this snapshot."""
        for state in self._partitions.values():
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(state.topic, state.partition), cached=True
                )
            except KafkaException:
                continue
            state.high_watermark = high if high != OFFSET_INVALID else None

    def _commit(self, consumer: Consumer, states: list[PartitionState] | None = None) -> None:
        offsets = []
        points = []
        for state in states if states is not None else list(self._partitions.values()):
            point = state.commit_point()
            if point is None or state.revoked:
                continue
            position, metadata = point
            offsets.append(
                TopicPartition(state.topic, state.partition, position, metadata=metadata)
            )
            points.append((state, position, metadata))
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # Not fatal: the next commit carries the same or a later position.
            log.warning("commit failed (will retry at the next interval): %s", exc)
            return
        for state, position, metadata in points:
            state.mark_committed(position, metadata)

    def _apply_pauses(self, consumer: Consumer) -> None:
        capacity = self.config.max_in_flight + self.config.buffer_size
        full = (
            len(self._in_flight) + len(self._backlog) + self._dead_lettering >= capacity
            or self._backlog.bytes >= self.config.buffer_max_bytes
        )
        self._paused_for_capacity = full
        to_pause: list[PartitionState] = []
        to_resume: list[PartitionState] = []
        for state in self._partitions.values():
            want = full or state.blocked
            if want != state.paused:
                (to_pause if want else to_resume).append(state)
        if to_pause:
            self._set_paused(consumer, to_pause, True)
        if to_resume:
            self._set_paused(consumer, to_resume, False)

    def _pause_all(self, consumer: Consumer) -> None:
        self._set_paused(consumer, [s for s in self._partitions.values() if not s.paused], True)

    def _set_paused(self, consumer: Consumer, states: list[PartitionState], paused: bool) -> None:
        if not states:
            return
        tps = [TopicPartition(s.topic, s.partition) for s in states]
        try:
            (consumer.pause if paused else consumer.resume)(tps)
        except KafkaException as exc:
            log.debug("pause/resume of %s failed (assignment changing): %s", tps, exc)
            return
        for state in states:
            state.paused = paused

    # ---- rebalances ------------------------------------------------------------------------

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=COMMITTED_TIMEOUT_S)
        for tp in committed:
            self._epoch += 1
            position = tp.offset if tp.offset >= 0 else None
            skip: set[int] = set()
            if position is not None and tp.metadata:
                try:
                    skip = offset_metadata.decode(position, tp.metadata)
                except offset_metadata.MetadataError as exc:
                    log.warning(
                        "ignoring commit metadata of %s[%d]: %s", tp.topic, tp.partition, exc
                    )
            state = PartitionState(tp.topic, tp.partition, self._epoch, position, skip)
            if position is not None:
                state.mark_committed(position, tp.metadata or "")
            self._partitions[(tp.topic, tp.partition)] = state
        log.info("assigned %s", [(tp.topic, tp.partition) for tp in partitions])
        if self._on_assign is not None:
            self._on_assign([(tp.topic, tp.partition) for tp in partitions])

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        states = self._detach(partitions)
        if not states:
            return
        revoked = set(map(id, states))
        deadline = self._clock() + self.config.revoke_grace_s
        while self._clock() < deadline and (
            any(id(i.owner) in revoked for i in self._in_flight.values()) or self._dead_lettering
        ):
            self.engine.wait(BUSY_WAIT_S)
            self._handle(self.engine.drain())
            if self._dead_letters is not None:
                self._dead_letters.poll()
        self._commit(consumer, states)
        for state in states:
            state.revoked = True  # completions still in flight are fenced from now on
        log.info("revoked %s", [(s.topic, s.partition) for s in states])

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for state in self._detach(partitions):
            state.revoked = True  # another member owns them: do not commit
        log.warning("partitions lost: %s", [(tp.topic, tp.partition) for tp in partitions])

    def _detach(self, partitions: list[TopicPartition]) -> list[PartitionState]:
        """Stop feeding these partitions: drop their backlog, cancel work not started yet."""
        states = [
            s for tp in partitions if (s := self._partitions.pop((tp.topic, tp.partition), None))
        ]
        detached = set(map(id, states))
        if not detached:
            return states
        self._backlog.remove_if(lambda item: id(item.owner) in detached)
        for item in self._in_flight.values():
            if id(item.owner) in detached:
                item.cancelled = True
        return states

    # ---- errors and stats ------------------------------------------------------------------

    def _on_kafka_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            self._stop.set()
        elif error.code() == KafkaError._PARTITION_EOF:
            return
        else:
            log.warning("kafka: %s", error.str())

    def stats(self) -> dict[str, Any]:
        partitions = {}
        for (topic, partition), state in list(self._partitions.items()):
            position, high = state.position, state.high_watermark
            lag = max(0, high - position) if high is not None and position is not None else None
            partitions[f"{topic}[{partition}]"] = {
                "position": state.position,
                "committed": state.committed,
                "incomplete": state.incomplete,
                "completed_above": state.completed_above,
                "lag": lag,
                "paused": state.paused,
                "blocked": state.blocked,
                "epoch": state.epoch,
            }
        return {
            **self.counters.as_dict(),
            "in_flight": len(self._in_flight),
            "backlog": len(self._backlog),
            "dead_lettering": self._dead_lettering,
            "paused_partitions": sorted(k for k, v in partitions.items() if v["paused"]),
            "partitions": partitions,
            "engine_info": self.engine.describe(),
        }
