"""Applying the engine's reports: fencing, completing records (those with outputs once the
outputs are acknowledged: outputs.py), the failure policy; and the one loop that waits for
in-flight work (used on revoke and at shutdown).

Ownership: the control thread. The work in flight is the tracker's (tracker.py): each report
settles its item there before anything else happens to it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.callbacks import Callback
from pyrallel_consumer.control.completing import complete_offsets, completions, unrevoked
from pyrallel_consumer.control.dead_letter import DeadLetterSink
from pyrallel_consumer.control.failures import FailurePolicy
from pyrallel_consumer.control.output_sink import OutputSink
from pyrallel_consumer.control.outputs import Outputs, record_key
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.errors import EngineError, HandlerExit, PyrallelError
from pyrallel_consumer.faults import Faults
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

OnComplete = Callable[[Completion], None]
Clock = Callable[[], float]

BUSY_WAIT_S = 0.02  # how long one wait for reports lasts while work is in flight

# Module constants: an Enum member looked up on its class costs ~150 ns in Python 3.11, and
# `apply` runs per record.
_SUCCEEDED = Outcome.SUCCEEDED
_CANCELLED = Outcome.CANCELLED
_ABANDONED = Outcome.ABANDONED
_STOPPED = Outcome.STOPPED


class ReportHandler:
    """Turns reports into completed offsets, counters and `on_complete` calls."""

    def __init__(
        self,
        config: ConsumerConfig,
        engine: Engine,
        tracker: Tracker,
        counters: Counters,
        dead_letters: DeadLetterSink | None,
        on_complete: Callback[Completion] | None,
        faults: Faults,
        clock: Clock,
        tick: Callable[[], None] = lambda: None,
        output_sink: OutputSink | None = None,
    ) -> None:
        """`tick` runs at every turn of `settle`'s wait (the control loop publishes its
        stats snapshot there). `output_sink` writes the handler's outputs (outputs=True)."""
        self._engine = engine
        self._tick = tick
        self._tracker = tracker
        self._counters = counters
        self._on_complete = on_complete
        self._clock = clock
        self._faults = faults
        self.failures = FailurePolicy(config, counters, dead_letters, self.complete, faults.park)
        self.outputs: Outputs | None = None
        if output_sink is not None:
            self.outputs = Outputs(
                config,
                output_sink,
                tracker,
                engine,
                counters,
                self.complete_each,
                self.failures.failed,
                clock,
            )

    def collect(self) -> list[Report]:
        """The engine's reports available now. An engine that cannot go on raises from
        `reports()`: its error is parked (an unexpected one as EngineError), and the run
        ends like any other failure."""
        try:
            return self._engine.reports()
        except PyrallelError as exc:
            self._faults.park(exc)
        except Exception as exc:
            error = EngineError(f"engine {self._engine.name!r} failed: {exc!r}")
            error.__cause__ = exc
            self._faults.park(error)
        return []

    def apply(self, reports: list[Report]) -> None:
        """Apply one turn's reports. With on_complete, the turn is timed as a whole: its
        calls are the only user code in it (callbacks.py)."""
        if not reports:
            return
        on_complete = self._on_complete
        started = self._clock() if on_complete is not None else 0.0
        self._apply(reports)
        if on_complete is not None:
            on_complete.warn_if_slow(self._clock() - started)

    def _apply(self, reports: list[Report]) -> None:
        """Each report settles its items in the tracker, then applies its outcome. A batch
        that succeeded (a GroupReport) completes its records in one pass."""
        tracker = self._tracker
        outputs = self.outputs
        for report in reports:
            if outputs is not None:
                if report.outputs is not None:
                    outputs.take(report)  # completed once the outputs are acknowledged
                    continue
                if outputs.refusals:
                    self._forget_refusals(outputs, report)
            if type(report) is not GroupReport:
                item = tracker.settle(report.id)
                if item is not None:
                    self._apply_one(item, report)
            elif report.outcome is _SUCCEEDED:
                self._complete_group(tracker.settle_all(report.ids), report)
            else:
                for item in tracker.settle_all(report.ids):
                    self._apply_one(item, report)

    def _forget_refusals(self, outputs: Outputs, report: Report) -> None:
        """A record redone after an output refusal was reported without outputs this time:
        its count of refusals is done with."""
        ids = report.ids if type(report) is GroupReport else (report.id,)
        for item in self._tracker.in_flight_items(ids):
            outputs.refusals.pop(record_key(item), None)

    def _apply_one(self, item: WorkItem[PartitionState], report: Report) -> None:
        outcome, counters = report.outcome, self._counters
        if outcome is _ABANDONED:
            counters.abandoned += 1  # never committed past; the error ending the run says why
            return
        if outcome is _CANCELLED:
            counters.cancelled += 1  # never committed past; the new owner redoes it
            return
        if outcome is _STOPPED:  # SystemExit/KeyboardInterrupt: not completed
            # Parked once: a stopped batch reports each of its records STOPPED.
            if self._faults.first is None:
                record, error = item.record, report.error or ""
                self._faults.park(HandlerExit(record.topic, record.partition, record.offset, error))
            return
        if item.owner.revoked:  # its partition moved on; the new owner redoes it
            counters.fenced += 1
            return
        if report.attempts > 1:
            counters.retries += report.attempts - 1
        if outcome is _SUCCEEDED:
            self.complete_all((item,), report, True)
        else:
            self.failures.failed(item, report)

    def _complete_group(self, items: list[WorkItem[PartitionState]], report: Report) -> None:
        """`_apply_one` for a batch that succeeded, in one pass."""
        live = unrevoked(items)
        self._counters.fenced += len(items) - len(live)
        if report.attempts > 1:
            self._counters.retries += (report.attempts - 1) * len(live)
        self.complete_all(live, report, True)

    def complete(self, item: WorkItem[PartitionState], report: Report, ok: bool) -> None:
        """Mark the record completed: committable once every record before it is."""
        self.complete_all((item,), report, ok)

    def complete_all(
        self, items: Sequence[WorkItem[PartitionState]], report: Report, ok: bool
    ) -> None:
        """Mark records completed under one report (`ok`: the handler succeeded)."""
        self._completed(items, report, ok)

    def complete_each(
        self, items: Sequence[WorkItem[PartitionState]], reports: list[Report]
    ) -> None:
        """Mark records completed whose outputs were all acknowledged, items[i] under
        reports[i] (outputs.py settles a turn's answers in one call)."""
        self._completed(items, reports, True)

    def _completed(
        self, items: Sequence[WorkItem[PartitionState]], reports: Report | list[Report], ok: bool
    ) -> None:
        complete_offsets(items)
        self._counters.completed += len(items)
        if self._on_complete is not None:
            self._on_complete.each(completions(items, reports, ok))

    def settle(
        self,
        busy: Callable[[], bool],
        deadline: float,
        serve: Callable[[], object] | None = None,
    ) -> None:
        """While `busy()` and before `deadline` (clock seconds): wait for reports, apply them,
        serve dead-letter acknowledgements and, if given, `serve()` (the shutdown drain keeps
        rebalance callbacks running with it)."""
        engine, clock, tick = self._engine, self._clock, self._tick
        while busy() and clock() < deadline:
            engine.wait(BUSY_WAIT_S)
            self.apply(self.collect())
            self.poll()
            if serve is not None:
                serve()
            tick()

    def start(self) -> None:
        """The run starts: the output sink builds its producer (KafkaError when it cannot)."""
        if self.outputs is not None:
            self.outputs.start()

    def poll(self) -> None:
        """Serve the acknowledgements of dead letters and outputs that are due, and hand
        records to redo after an output refusal back to the engine; never blocks."""
        self.failures.poll()
        if self.outputs is not None:
            self.outputs.poll()

    def close(self, timeout: float) -> None:
        """Release the producers, each waiting up to `timeout` seconds for what it still
        waits for (failures.py, outputs.py). Called once per run, after the consumer closed."""
        try:
            if self.outputs is not None:
                self.outputs.close(timeout)
        finally:
            self.failures.close(timeout)
