"""Records with outputs: completed only once the broker acknowledged every output (at least
once).

A report that carries outputs (`Report.outputs`, outputs=True) does not complete its records
when it arrives: its items stay in flight in the tracker (so they hold their in-flight slots:
backpressure counts them, the revoke grace and the shutdown drain wait for them, and no commit
passes them) while the sink (output_sink.py) writes the outputs; their lane slots are given
back at once (Tracker.release_lanes), since a lane's order needs only the write order. Then:
- every output acknowledged: the records complete, as a report without outputs would have;
- an output refused (refused at once, or a delivery error such as a record over the topic's
  max.message.bytes): a failed attempt of the unit's records. With retries left (`retries`
  counts refusals of one record here, separately from the engine's count of handler
  exceptions, which starts again at each resubmission) they go back to the engine after the
  usual backoff: the handler runs again and its outputs are written again, so the outputs
  acknowledged before the refusal may be written twice (at least once). Once a record was
  refused `retries` + 1 times, `on_failure` takes it (failures.py) with the refusal as its
  error: which record, which output, the cause and the broker's code.
A record whose partition was revoked meanwhile is fenced (counted, not completed): the new
owner redoes it.

Answers are settled in bulk: the sink's answer for a unit only notes it (`_answered`), and
`settle_answered` (after each `poll` of the sink, and by the exactly-once committer after its
flush, before it takes the commit points) completes every acknowledged record of the turn in one
pass: one tracker update and one `on_complete` call for all of them, instead of one per unit.

The order of a lane's outputs holds (output_sink.py says why) because units are written in the
order their reports arrive. A resubmitted record joins its lane behind the records already
handed to the engine, so its outputs follow theirs: at least once, in order except around a
refusal.

Ownership: the control thread, like the tracker; sink answers run inside `poll`/`close`.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.output_sink import TRANSACTION_ABORTING, OutputSink, Refusal
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.errors import last_line
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

log = logging.getLogger("pyrallel_consumer")

Item = WorkItem[PartitionState]
RecordKey = tuple[str, int, int]  # topic, partition, offset
# Completes records whose outputs were acknowledged, items[i] under reports[i]
# (reports.ReportHandler.complete_each).
Complete = Callable[[Sequence[Item], list[Report]], None]
# Hands a record that failed for good to the failure policy (failures.FailurePolicy.failed).
Fail = Callable[[Item, Report], None]
Clock = Callable[[], float]


class Outputs:
    """Holds records until their outputs are acknowledged; redoes the refused ones (module
    doc). `waiting`: records whose outputs are being written or that wait to be redone."""

    def __init__(
        self,
        config: ConsumerConfig,
        sink: OutputSink,
        tracker: Tracker,
        engine: Engine,
        counters: Counters,
        complete: Complete,
        fail: Fail,
        clock: Clock = time.monotonic,
    ) -> None:
        self._policy = config.retry
        self._sink = sink
        self._tracker = tracker
        self._engine = engine
        self._counters = counters
        self._complete = complete
        self._fail = fail
        self._clock = clock
        # A record's refusals so far, by (topic, partition, offset): a record redone after an
        # aborted transaction is a new work item, and its count must survive that.
        self.refusals: dict[RecordKey, int] = {}
        # Exactly once: a record refused for good stays listed, because the refusal aborted
        # the transaction its failure was handled in; when it comes back, it fails at once
        # instead of writing (and aborting) again.
        self._keep_given_up = config.transactional_id is not None
        # Records to redo: (due, sequence, items), the earliest first.
        self._redo: list[tuple[float, int, list[Item]]] = []
        self._sequence = itertools.count()
        self._closing = False
        # Units answered and not settled yet, in answer order.
        self._answered: list[_Waiting] = []

    def take(self, report: Report) -> None:
        """A report whose handler call succeeded with `report.outputs`: write them; its records
        complete once all are acknowledged."""
        if type(report) is GroupReport:
            items = self._live(self._tracker.in_flight_items(report.ids))
        else:  # the usual case, one record: no list to filter
            item = self._tracker.in_flight_item(report.id)
            if item is None:
                return
            items = [item] if not item.owner.revoked else self._live([item])
        if not items:
            return
        if report.attempts > 1:
            self._counters.retries += (report.attempts - 1) * len(items)
        if self._keep_given_up and self.refusals:
            items = self._fail_given_up(items, report)
            if not items:
                return
        self._tracker.release_lanes(items)  # in flight until written; the lane moves on
        self._sink.write(report.outputs or [], _Waiting(items, report, self._answered))

    def _fail_given_up(self, items: list[Item], report: Report) -> list[Item]:
        """Hand the records refused for good before (exactly once: their transaction was
        aborted) to the failure policy without writing their outputs; returns the others. A
        batch with one of them fails as a whole, since its outputs are not per record."""
        retries = self._policy.retries
        given_up = [i for i in items if self.refusals.get(record_key(i), 0) > retries]
        if not given_up:
            return items
        now = self._clock()
        for item in items:
            self._tracker.settle_all((item.id,))
            record = item.record
            error = (
                f"OutputRefused: the outputs of {record.topic}[{record.partition}]@"
                f"{record.offset} (or of its batch) were refused {retries + 1} time(s), the "
                "last in a transaction that was aborted for it; not written again"
            )
            self._fail(item, Report(item.id, Outcome.FAILED, retries + 1, now, error))
        return []

    def _live(self, items: list[Item]) -> list[Item]:
        """`items` whose partition is still assigned; the others are settled and fenced."""
        live = [item for item in items if not item.owner.revoked]
        if len(live) < len(items):
            fenced = [item.id for item in items if item.owner.revoked]
            self._counters.fenced += len(self._tracker.settle_all(fenced))
        return live

    def settle_answered(self) -> None:
        """Settle the units answered since the last call (module doc): the acknowledged ones
        complete together, the refused ones are failed attempts (`_refused`)."""
        if not self._answered:
            return
        answered = self._answered.copy()
        self._answered.clear()
        items: list[Item] = []
        reports: list[Report] = []
        for unit in answered:
            if unit.refusal is None:
                items += unit.items
                reports += [unit.report] * len(unit.items)
            else:
                self._refused(unit.items, unit.report, unit.refusal)
        if not items:
            return
        if any(item.owner.revoked for item in items):
            reports = [r for item, r in zip(items, reports, strict=True) if not item.owner.revoked]
            items = self._live(items)
        self._tracker.settle_all([item.id for item in items])
        if self.refusals:
            for item in items:
                self.refusals.pop(record_key(item), None)
        self._complete(items, reports)

    def _refused(self, items: list[Item], report: Report, refusal: Refusal) -> None:
        if self._closing:  # not completed: left in flight, the run's end counts it abandoned
            return
        if refusal.code == TRANSACTION_ABORTING:
            # Not completed, and not this record's fault: its transaction failed on another
            # write (the abort redoes it).
            self._tracker.settle_all([item.id for item in items])
            return
        items = self._live(items)
        redo = []
        now = self._clock()
        for item in items:
            key = record_key(item)
            refused = self.refusals.get(key, 0) + 1
            error = _error_text(item, refusal, len(report.outputs or ()), refused)
            if refused > self._policy.retries:
                if self._keep_given_up:
                    self.refusals[key] = refused
                else:
                    self.refusals.pop(key, None)
                self._tracker.settle_all((item.id,))
                self._fail(item, Report(item.id, Outcome.FAILED, refused, now, error))
                continue
            self.refusals[key] = refused
            self._counters.retries += 1
            log.warning(
                "%s; redoing the record (retry %d of %d)", error, refused, self._policy.retries
            )
            redo.append(item)
        if redo:
            delay = self._policy.delay(
                max(self.refusals[record_key(item)] for item in redo), random.random()
            )
            heapq.heappush(self._redo, (now + delay, next(self._sequence), redo))

    def start(self) -> None:
        """The run starts: the sink builds its producer (KafkaError when it cannot)."""
        self._sink.start()

    def poll(self) -> None:
        """Serve the sink's answers, settle them, and hand the records due for another attempt
        back to the engine (those of partitions revoked meanwhile are fenced instead)."""
        self._sink.poll()
        self.settle_answered()
        redo = self._redo
        if not redo:
            return
        now = self._clock()
        while redo and redo[0][0] <= now:
            items = self._live(heapq.heappop(redo)[2])
            if items:
                for item in items:
                    item.dispatched_at = now
                self._engine.submit(items)

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the answers still due; the records whose outputs
        were not all acknowledged by then, or that waited to be redone, stay uncommitted (the
        next run redoes them). Called once per run, after the consumer closed."""
        self._closing = True
        self._redo.clear()  # left in flight: the run's end counts them abandoned
        self._sink.close(timeout)
        self.settle_answered()


class _Waiting:
    """The records of one unit, waiting for the answer on its outputs (the sink's
    `on_written`): answered, it notes itself for `Outputs.settle_answered`. A slotted object
    rather than a closure (output_sink._Delivery says why)."""

    __slots__ = ("_answered", "items", "refusal", "report")

    def __init__(self, items: list[Item], report: Report, answered: list[_Waiting]) -> None:
        self.items = items
        self.report = report
        self.refusal: Refusal | None = None
        self._answered = answered

    def __call__(self, refusal: Refusal | None) -> None:
        self.refusal = refusal
        self._answered.append(self)


def record_key(item: Item) -> RecordKey:
    """The record's identity across work items (a redone record gets a new item)."""
    record = item.record
    return record.topic, record.partition, record.offset


def _error_text(item: Item, refusal: Refusal, outputs: int, refused: int) -> str:
    """The error of a record whose output was refused: which record, which output, the cause
    and the broker's code. One line: it is the last line the failure policy shows."""
    record, output = item.record, refusal.output
    code = "" if refusal.code is None else f" (Kafka error code {refusal.code})"
    if refusal.code == KafkaError.UNKNOWN_TOPIC_OR_PART:
        code += f"; create topic {output.topic!r}, or fix the name the handler gives it"
    return (
        f"OutputRefused: output {refusal.index + 1} of {outputs} of "
        f"{record.topic}[{record.partition}]@{record.offset} (to topic {output.topic!r}, key "
        f"{output.key!r:.60}) was refused {refused} time(s): {last_line(refusal.cause)}{code}"
    )
