"""Fakes of the project's own interfaces, to drive the control plane without a broker.

- `FakeClock`: monotonic seconds that move only when something waits (engine or client).
- `FakeClient` (control.client.KafkaClient): partitions hold fake messages; rebalance events
  queued by the test run inside `consume`/`poll`/`close`, as librdkafka runs its callbacks;
  assignment starts fetching at the committed offset; commits are recorded. `markers[p]`
  offsets follow the partition's last record without being delivered (read_committed:
  transaction markers, aborted records): the position moves past them once all was read.
- `FakeEngine` (engines.base.Engine): reports SUCCEEDED at once, unless the test holds an item;
  held items are released by the test with any outcome. `wait` advances the clock.
- `FakeDeadLetters` (control.dead_letter.DeadLetterSink): acknowledgements only when the test
  says so.
- `Script`: actions the test wants to happen at the first loop turn where a condition holds.

The messages and client errors the fake client hands out are in fake_messages.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fake_messages import FakeMessage

from pyrallel_consumer.config import ConsumerConfig, build_config
from pyrallel_consumer.control.client import (
    ClientError,
    CommitFailure,
    CommitOffset,
    CommittedOffset,
    ErrorCallback,
    Message,
    PartitionsCallback,
)
from pyrallel_consumer.control.dead_letter import OnDelivered
from pyrallel_consumer.control.loop import ControlLoop
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.record import Record
from pyrallel_consumer.topic_partition import TopicPartition
from pyrallel_consumer.work import Outcome, Report, WorkItem

TOPIC = "orders"


def tp(partition: int) -> TopicPartition:
    return TopicPartition(TOPIC, partition)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Script:
    """(condition, action) pairs; each runs once, at the first check where its condition holds,
    in the order given (a later step waits for the earlier ones)."""

    def __init__(self) -> None:
        self._steps: deque[tuple[Callable[[], bool], Callable[[], None]]] = deque()

    def when(self, condition: Callable[[], bool], action: Callable[[], None]) -> None:
        self._steps.append((condition, action))

    def run_due(self) -> None:
        while self._steps and self._steps[0][0]():
            self._steps.popleft()[1]()

    @property
    def done(self) -> bool:
        return not self._steps


@dataclass
class FakeClient:
    """One consumer of a single topic. `log[p]` are the partition's records."""

    clock: FakeClock
    script: Script
    log: dict[int, list[FakeMessage]] = field(default_factory=dict)
    committed_offsets: dict[TopicPartition, tuple[int, str]] = field(default_factory=dict)
    commits: list[list[CommitOffset]] = field(default_factory=list)
    events: deque[tuple[str, list[TopicPartition]]] = field(default_factory=deque)
    assigned: set[TopicPartition] = field(default_factory=set)
    paused: set[TopicPartition] = field(default_factory=set)
    pause_calls: list[tuple[str, list[TopicPartition]]] = field(default_factory=list)
    markers: dict[int, int] = field(default_factory=dict)
    fail_commits: bool = False  # every commit request fails as a whole (ClientError)
    # partition -> (Kafka error code, its name, retriable): the broker refuses that partition
    refuse_commits: dict[int, tuple[int, str, bool]] = field(default_factory=dict)
    metadata_limit_bytes: int = 4096
    metadata_limit_reads: int = 0
    closed: bool = False
    seeks: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)
    on_error: ErrorCallback | None = None  # the loop's error callback, once built
    _fetch: dict[TopicPartition, int] = field(default_factory=dict)
    _callbacks: tuple[PartitionsCallback, PartitionsCallback, PartitionsCallback] | None = None

    def produce(self, partition: int, count: int, keys: int = 1) -> None:
        records = self.log.setdefault(partition, [])
        for _ in range(count):
            offset = len(records)
            records.append(
                FakeMessage(TOPIC, partition, offset, b"k%d" % (offset % keys), b"v%d" % offset)
            )

    def rebalance(self, kind: str, *partitions: int) -> None:
        """Queue an assign/revoke/lost event; it runs inside the next consume or poll."""
        self.events.append((kind, [tp(p) for p in partitions]))

    def factory(self, kafka_config: Mapping[str, Any], on_error: ErrorCallback) -> FakeClient:
        self.on_error = on_error
        return self

    # ---- KafkaClient ---------------------------------------------------------------------

    def subscribe(
        self,
        topics: Sequence[str],
        on_assign: PartitionsCallback,
        on_revoke: PartitionsCallback,
        on_lost: PartitionsCallback,
    ) -> None:
        assert list(topics) == [TOPIC]
        self._callbacks = (on_assign, on_revoke, on_lost)

    def _serve(self) -> None:
        self.script.run_due()
        assert self._callbacks is not None, "consume before subscribe"
        on_assign, on_revoke, on_lost = self._callbacks
        while self.events:
            kind, partitions = self.events.popleft()
            if kind == "assign":
                self.assigned.update(partitions)
                for key in partitions:
                    self._fetch[key] = self.committed_offsets.get(key, (0, ""))[0]
                on_assign(partitions)
            else:
                (on_revoke if kind == "revoke" else on_lost)(partitions)
                self.assigned.difference_update(partitions)
                self.paused.difference_update(partitions)

    def consume(self, max_records: int, timeout: float) -> Sequence[Message]:
        self._serve()
        out: list[Message] = []
        for key in sorted(self.assigned - self.paused):
            records = self.log.get(key.partition, [])
            while len(out) < max_records and self._fetch[key] < len(records):
                out.append(records[self._fetch[key]])
                self._fetch[key] += 1
        return out

    def poll(self, timeout: float) -> Message | None:
        messages = self.consume(1, 0)
        if not messages:
            self.clock.advance(timeout)  # nothing arrived: the wait ran out
            return None
        return messages[0]

    def commit(self, offsets: Sequence[CommitOffset]) -> list[CommitFailure]:
        if self.fail_commits:
            raise ClientError("coordinator load in progress", 14, "COORDINATOR_LOAD_IN_PROGRESS")
        failures = []
        accepted = []
        for o in offsets:
            refused = self.refuse_commits.get(o.partition)
            if refused is None:
                accepted.append(o)
                self.committed_offsets[tp(o.partition)] = (o.offset, o.metadata)
            else:
                code, name, retriable = refused
                failures.append(
                    CommitFailure(
                        o.topic, o.partition, code, name, f"Broker: {name}", False, retriable
                    )
                )
        if accepted:
            self.commits.append(accepted)
        return failures

    def metadata_limit(self, timeout: float) -> int:
        self.metadata_limit_reads += 1
        return self.metadata_limit_bytes

    def committed(
        self, partitions: Sequence[TopicPartition], timeout: float
    ) -> list[CommittedOffset]:
        out = []
        for key in partitions:
            found = self.committed_offsets.get(key)
            offset, metadata = found if found is not None else (None, "")
            out.append(CommittedOffset(key.topic, key.partition, offset, metadata))
        return out

    def positions(self, partitions: Sequence[TopicPartition]) -> list[int | None]:
        out: list[int | None] = []
        for key in partitions:
            fetched = self._fetch.get(key)
            if key not in self.assigned or fetched is None:
                out.append(None)
            elif fetched == len(self.log.get(key.partition, [])):
                out.append(fetched + self.markers.get(key.partition, 0))
            else:
                out.append(fetched)
        return out

    def _check_assigned(self, partitions: Sequence[TopicPartition]) -> None:
        if not set(partitions) <= self.assigned:
            raise ClientError(f"{partitions} not assigned")

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        self._check_assigned(partitions)
        self.pause_calls.append(("pause", list(partitions)))
        self.paused.update(partitions)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        self._check_assigned(partitions)
        self.pause_calls.append(("resume", list(partitions)))
        self.paused.difference_update(partitions)

    def high_watermark(self, partition: TopicPartition) -> int | None:
        return len(self.log.get(partition.partition, [])) + self.markers.get(partition.partition, 0)

    def query_watermarks(self, partition: TopicPartition, timeout: float) -> tuple[int, int]:
        return 0, len(self.log.get(partition.partition, []))

    def seek(self, positions: Sequence[tuple[TopicPartition, int]]) -> None:
        self._check_assigned([key for key, _ in positions])
        for key, offset in positions:
            self.seeks.append((key.partition, offset))
            self._fetch[key] = offset

    def group_metadata(self) -> object:
        return ("group metadata", len(self.commits))

    def close(self) -> None:
        if self._callbacks is None:  # closed before it subscribed (a failed start)
            self.closed = True
            return
        if self.assigned:
            self.rebalance("revoke", *(key.partition for key in sorted(self.assigned)))
        self._serve()
        self.closed = True

    def last_commit(self, partition: int = 0) -> tuple[int, str] | None:
        return self.committed_offsets.get(tp(partition))


class FakeEngine(Engine):
    """Reports at once unless `hold(item)`; held items wait for `release`."""

    name = "fake"

    def __init__(
        self,
        config: ConsumerConfig,
        clock: FakeClock,
        script: Script,
        hold: Callable[[WorkItem[object]], bool] = lambda item: False,
    ) -> None:
        super().__init__(lambda record: None, config)
        self.clock = clock
        self.script = script
        self.hold = hold
        self.held: dict[int, WorkItem[object]] = {}  # by offset (one partition per test)
        self.handled: list[tuple[int, int]] = []  # (partition, offset) in submission order
        self.max_in_flight_seen = 0
        self.closed = False
        self.close_timeouts: list[float] = []
        self._reports: list[Report] = []
        self._unreported = 0

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        for item in items:
            self._unreported += 1
            if self.hold(item):
                self.held[item.record.offset] = item
            else:
                self._report(item, Outcome.SUCCEEDED)
        self.max_in_flight_seen = max(self.max_in_flight_seen, self._unreported)

    def _report(self, item: WorkItem[object], outcome: Outcome, error: str | None = None) -> None:
        if item.cancelled and outcome is Outcome.SUCCEEDED:
            outcome = Outcome.CANCELLED  # not started when its partition was revoked
        else:
            self.handled.append((item.record.partition, item.record.offset))
        attempts = 0 if outcome is Outcome.CANCELLED else 1
        self._reports.append(Report(item.id, outcome, attempts, self.clock(), error))

    def release(
        self,
        *offsets: int,
        outcome: Outcome = Outcome.SUCCEEDED,
        error: str = "Traceback ...\nValueError: boom",
    ) -> None:
        """Finish held items with `outcome` (FAILED ones with `error`); one cancelled while
        held had not started, so it is reported CANCELLED (use `finish_late` for items that
        had started)."""
        for offset in offsets:
            item = self.held.pop(offset)
            self._report(item, outcome, error if outcome is Outcome.FAILED else None)

    def finish_late(self, *offsets: int) -> None:
        """Items that had started before the revoke: they succeed even though cancelled."""
        for offset in offsets:
            item = self.held.pop(offset)
            self.handled.append((item.record.partition, offset))
            self._reports.append(Report(item.id, Outcome.SUCCEEDED, 1, self.clock()))

    def reports(self) -> list[Report]:
        reports, self._reports = self._reports, []
        self._unreported -= len(reports)
        return reports

    def wait(self, timeout: float) -> None:
        self.clock.advance(timeout)
        self.script.run_due()

    def close(self, timeout: float) -> None:
        self.closed = True
        self.close_timeouts.append(timeout)


class FakeDeadLetters:
    def __init__(self) -> None:
        self.published: list[tuple[Record, OnDelivered]] = []
        self.closed = False

    def publish(self, record: Record, error: str, attempts: int, on_delivered: OnDelivered) -> None:
        self.published.append((record, on_delivered))

    def poll(self) -> None:
        """Acknowledgements come only from `ack`."""

    def close(self, timeout: float) -> int:
        self.closed = True
        given_up = len(self.published)
        while self.published:
            self.ack("_PURGE_QUEUE: not acknowledged before close")
        return given_up

    def ack(self, error: str | None = None) -> None:
        _, on_delivered = self.published.pop(0)
        on_delivered(error)


@dataclass
class Harness:
    config: ConsumerConfig
    clock: FakeClock
    script: Script
    client: FakeClient
    engine: FakeEngine
    loop: ControlLoop
    dead_letters: FakeDeadLetters
    assignments: list[list[TopicPartition]]


def harness(
    hold: Callable[[WorkItem[object]], bool] = lambda item: False,
    client: FakeClient | None = None,
    kafka_config: Mapping[str, Any] | None = None,
    **options: Any,
) -> Harness:
    """A control loop over a fake client and engine sharing one fake clock; `kafka_config`
    adds librdkafka settings (e.g. session.timeout.ms)."""
    clock = client.clock if client is not None else FakeClock()
    script = client.script if client is not None else Script()
    client = client or FakeClient(clock, script)
    options.setdefault("ordering", "unordered")
    config = build_config(
        {"bootstrap.servers": "fake:9092", "group.id": "g", **(kafka_config or {})},
        topics=[TOPIC],
        **options,
    )
    engine = FakeEngine(config, clock, script, hold)
    dead_letters = FakeDeadLetters()
    assignments: list[list[TopicPartition]] = []
    loop = ControlLoop(
        config,
        engine,
        on_assign=assignments.append,
        clock=clock,
        client_factory=client.factory,
        dead_letters=dead_letters if config.on_failure == "dead_letter" else None,
    )
    return Harness(config, clock, script, client, engine, loop, dead_letters, assignments)


def stopping(h: Harness) -> tuple[Callable[[], None], list[float]]:
    """A script action that asks the loop to stop, and the list it appends the fake time of
    that request to."""
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(h.clock())
        h.loop.request_stop()

    return stop, stopped_at


def run(h: Harness, timeout: float = 600.0) -> int:
    """Run until the script stops the loop, or `timeout` fake seconds."""
    return h.loop.run(max_records=None, timeout=timeout)
