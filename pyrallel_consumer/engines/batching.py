"""Batch mode: the handler takes a list of records, one call per batch, on any engine.

`BatchingEngine` wraps the engine the user chose. To the control plane it is an ordinary engine
(one work item per record; a batch's records come back as one `GroupReport`, records isolated
by a split as their own reports); to the inner engine every batch is one work item
whose argument is the list of records, with no lane, because the assembly (batch_assembly.py)
already keeps each lane's batches one at a time and in order. So the inner engines, their
retries and the process engine's worker-death rules apply to a batch exactly as to a record.

Failures: the inner engine retries a failing batch as a batch, with the usual backoff. When it
fails on every attempt, the batch is bisected: its first half runs (with the same retries),
then its second half, each half that fails is halved again, down to single records. A record
that fails alone is reported failed with its own error (the failure policy then takes it);
every other record succeeds. The pieces run one at a time, in batch order, while the batch
keeps its lanes, so per-key order holds through a split. Bisection rather than one call per
record: with one bad record among n it takes about 2 log2(n) calls instead of n. A worker
death is a failed attempt of the batch (worker_deaths.py), so a record that kills its worker
is isolated the same way. A batch whose handler raised SystemExit or KeyboardInterrupt
(STOPPED, attempts.py) is not split: each of its records is reported STOPPED.

A record's report counts `attempts` as the handler calls that included it; `stats()` counts
batches, the records in them, handler calls, and the splits.

Threads: everything here runs on the control thread, as the Engine interface requires. The
inner engine's threads only read the pieces handed to them (the list of records, never changed
after the hand-off, and its work items' `cancelled` flags, which only the control thread sets).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.batch_assembly import Batch, BatchAssembler, Item, piece_lists
from pyrallel_consumer.errors import last_line, record_handler_hint
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

log = logging.getLogger("pyrallel_consumer.batches")

Clock = Callable[[], float]

_SUCCEEDED = Outcome.SUCCEEDED
_FAILED = Outcome.FAILED


class Piece(WorkItem[object]):
    """A batch, or after a split part of one, as the inner engine sees it: `record` is the
    list of records the handler takes, `ids` its items' ids (`parts`: both, from
    `piece_lists`). Cancelled when all of its records are (their partitions were revoked before
    it started)."""

    __slots__ = ("batch", "calls_before", "ids", "items")

    def __init__(
        self,
        id: int,
        items: list[Item],
        parts: tuple[list[Record], list[int]],
        batch: _Running,
        calls_before: int,
    ) -> None:
        records, self.ids = parts
        # Engines hand `record` to the handler without looking inside; in batch mode the
        # handler takes the list.
        super().__init__(id, None, cast(Record, records), None, items[0].received_at)
        self.items = items
        self.batch = batch
        self.calls_before = calls_before  # handler calls its records were in, before this piece

    @property
    def cancelled(self) -> bool:
        return all(item.cancelled for item in self.items)

    @cancelled.setter
    def cancelled(self, value: bool) -> None:
        if value:
            for item in self.items:
                item.cancelled = True


class _Running:
    """A sent batch until all of its records are settled: the pieces still to run (after a
    split, one at a time, first half first)."""

    __slots__ = ("batch", "calls", "failed", "split", "to_run", "unrun")

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.to_run: deque[tuple[list[Item], int]] = deque()  # (items, calls_before)
        self.calls = 0  # handler calls made for this batch and its pieces
        self.failed = 0  # records that failed alone
        self.unrun = 0  # records reported CANCELLED or STOPPED: the run stopped meanwhile
        self.split = False  # failed every attempt as a whole: being bisected


class BatchingEngine(Engine):
    """Runs `inner` over batches of the records submitted to it (see module doc)."""

    def __init__(self, inner: Engine, config: ConsumerConfig, clock: Clock = time.monotonic):
        super().__init__(inner.handler, config)
        if config.batch_size is None:
            raise ValueError("BatchingEngine needs config.batch_size (batch mode)")
        self.name = inner.name
        self.inner = inner
        self._clock = clock
        self._assembly = BatchAssembler(
            config.batch_size, config.batch_max_wait_s, config.max_in_flight
        )
        self._pieces: dict[int, Piece] = {}  # submitted to the inner engine, not reported
        self._next_id = 0
        self._reports: list[Report] = []  # per record, for the next reports()
        # Pieces for the inner engine, handed over in one submit per call here: the baseline
        # engine's submit waits for what it was given, once per call, not once per piece.
        self._outgoing: list[WorkItem[object]] = []
        self.batches = 0  # batches sent
        self.records = 0  # records in them
        self.calls = 0  # handler calls for batches and their pieces
        self.splits = 0  # batches bisected after failing every attempt
        self.split_calls = 0  # handler calls made for the pieces of split batches
        self._warned_record_handler = False  # the warning of _check_failure, given once

    def start(self) -> None:
        self.inner.start()

    def wait_ready(self, timeout: float) -> bool:
        return self.inner.wait_ready(timeout)

    def submit(self, items: Sequence[Item]) -> None:
        now = self._clock()
        self._assembly.add(items, now)
        self._send_ready(now)
        self._hand_over()

    def reports(self) -> list[Report]:
        for report in self.inner.reports():
            if type(report) is GroupReport:  # several pieces that succeeded at once
                for piece_id in report.ids:
                    self._settle(piece_id, report)
            else:
                self._settle(report.id, report)
        self._send_ready(self._clock())
        self._hand_over()
        out, self._reports = self._reports, []
        return out

    def wait(self, timeout: float) -> None:
        due = self._assembly.due_in(self._clock(), bool(self._pieces))
        self.inner.wait(timeout if due is None else min(timeout, due))

    def abandon(self) -> None:
        self.inner.abandon()

    def close(self, timeout: float) -> None:
        """Records never sent (the open batch, records waiting for their lane) are abandoned,
        like records queued in any engine: never reported, so never committed."""
        self.inner.close(timeout)

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "batch_size": self.config.batch_size,
            "batch_max_wait_s": self.config.batch_max_wait_s,
        }

    def counters(self) -> dict[str, Any]:
        return {"batches": self.counts()}

    def counts(self) -> dict[str, int]:
        """Batches sent, records in them, handler calls, splits and calls spent on splits."""
        return {
            "batches": self.batches,
            "records": self.records,
            "calls": self.calls,
            "splits": self.splits,
            "split_calls": self.split_calls,
        }

    # ---- batches out -----------------------------------------------------------------------

    def _hand_over(self) -> None:
        if self._outgoing:
            outgoing, self._outgoing = self._outgoing, []
            self.inner.submit(outgoing)

    def _send_ready(self, now: float) -> None:
        for batch in self._assembly.take(now, bool(self._pieces)):
            self.batches += 1
            self.records += len(batch.items)
            running = _Running(batch)
            running.to_run.append((batch.items, 0))
            self._next_piece(running, now)

    def _next_piece(self, running: _Running, now: float) -> None:
        """Queue the next piece of `running` for the inner engine, or release its lanes when
        none is left."""
        while running.to_run:
            items, calls_before = running.to_run.popleft()
            parts = piece_lists(items)
            if parts is None:  # rare: a revoke cancelled some before they were sent
                cancelled = [item for item in items if item.cancelled]
                running.unrun += len(cancelled)
                self._reports += [Report(item.id, Outcome.CANCELLED, 0, now) for item in cancelled]
                items = [item for item in items if not item.cancelled]
                parts = piece_lists(items)
            if items and parts is not None:
                self._next_id += 1
                piece = Piece(self._next_id, items, parts, running, calls_before)
                self._pieces[piece.id] = piece
                self._outgoing.append(piece)
                return
        if running.split:
            if running.unrun:
                outcome = (
                    f"the run stopped before it ended ({running.failed} record(s) failed "
                    f"alone, {running.unrun} not run)"
                )
            elif running.failed:
                outcome = f"{running.failed} record(s) failed alone, given to on_failure"
            else:
                outcome = "no record failed alone (the failure did not recur)"
            log.warning(
                "a batch of %d records failed; bisecting it took %d handler calls in all: %s",
                len(running.batch.items),
                running.calls,
                outcome,
            )
        self._assembly.release(running.batch, now)

    # ---- reports in ------------------------------------------------------------------------

    def _settle(self, piece_id: int, report: Report) -> None:
        piece = self._pieces.pop(piece_id, None)
        if piece is None:
            return
        running, items = piece.batch, piece.items
        self.calls += report.attempts
        running.calls += report.attempts
        if running.split:
            self.split_calls += report.attempts
        attempts = piece.calls_before + report.attempts
        outcome, at, out = report.outcome, report.completed_at, self._reports
        if outcome is _FAILED and not self._warned_record_handler:
            self._check_failure(report.error)
        if outcome is _FAILED and len(items) > 1:
            if not running.split:
                running.split = True
                self.splits += 1
            middle = len(items) // 2
            running.to_run.appendleft((items[middle:], attempts))
            running.to_run.appendleft((items[:middle], attempts))
        elif outcome is _FAILED:
            running.failed += 1
            out.append(Report(items[0].id, _FAILED, attempts, at, report.error))
        else:
            if outcome is not _SUCCEEDED:
                running.unrun += len(items)
            # SUCCEEDED and CANCELLED carry no error; STOPPED (the batch handler raised
            # SystemExit or KeyboardInterrupt) gives each record its traceback, and the control
            # plane stops the run without completing any of them. Not bisected: the handler
            # asked to stop, it did not fail on some record.
            # A batch's outputs (outputs=True) are the whole piece's: its records complete
            # together once the broker acknowledged them all.
            out.append(GroupReport(piece.ids, outcome, attempts, at, report.error, report.outputs))
        self._next_piece(running, at)

    def _check_failure(self, error: str | None) -> None:
        """Warn, once, when a batch failed the way a handler written for one record fails
        (errors.record_handler_hint; handler_check.py refuses such a handler up front only
        when its annotation says so): the bisection then fails every record alone, after all
        of their retries."""
        hint = record_handler_hint(error, self.config.batch_size)
        if hint is not None:
            self._warned_record_handler = True
            log.warning(
                "a batch failed with %s: %s. If so, every record fails alone once it is "
                "bisected out.",
                last_line(error),
                hint,
            )
