"""The words the control plane and the engines share: work item, outcome, report, lane.

A leaf module: it imports only `record`, `output` and `native`, so both `control/` and
`engines/` may import it without importing each other. Glossary (README): a *record* is one
Kafka message; its *lane* is the unit of ordering; a work item is *in flight* from its
submission to an engine until the engine's report on it is applied (a `Report` on one item,
or a `GroupReport` on several).

Threads: the control thread (in a process worker, its main thread) builds work items and
hands them to the threads that run them by `submit`; an engine's thread builds each report and
hands it back through the engine's ReportQueue (engines/base.py). Neither changes after its
hand-off, but for `WorkItem.cancelled` (its docstring).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record

# The unit of ordering: items that share a lane run one at a time, in submission order.
# None means unordered (no constraint).
Lane = Hashable | None

# The control plane's bookkeeping object for an item (its partition state). Covariant, so an
# engine can accept any `WorkItem[object]`; engines never look at the owner.
Owner_co = TypeVar("Owner_co", covariant=True)


class Outcome(enum.IntEnum):
    """What an engine did with one work item.

    An IntEnum because the member is also its IPC code (codec.py): the process engine's
    workers send it as is, without a per-record conversion.
    """

    SUCCEEDED = 0  # the handler returned, on some attempt
    FAILED = 1  # the handler raised on every attempt; the report's `error` has the last traceback
    CANCELLED = 2  # not started: its partition was revoked before the item's turn came
    # The handler raised SystemExit or KeyboardInterrupt: not completed, and the run stops
    # cleanly (errors.HandlerExit); `error` has the traceback.
    STOPPED = 3
    # The engine gave the item up without a verdict (its worker process was given up: the run
    # ends with errors.WorkerError): not completed, never committed; the next run redoes it.
    ABANDONED = 4


# Code -> Outcome without Enum's call machinery (the process engine maps every result back).
OUTCOME_BY_CODE: dict[int, Outcome] = {outcome.value: outcome for outcome in Outcome}


class WorkItem(Generic[Owner_co]):
    """One record submitted to an engine.

    `cancelled` may be set by the control thread while the item waits; an engine that sees it
    before starting the item reports `Outcome.CANCELLED` instead of running the handler.
    Shared without a lock: only the control thread writes it, only ever from False to True,
    and an engine thread that reads it too late runs the item, whose report is then fenced
    (its partition was revoked), so a late look costs a handler call, never a commit.
    """

    __slots__ = ("cancelled", "dispatched_at", "id", "lane", "owner", "received_at", "record")

    def __init__(
        self, id: int, lane: Lane, record: Record, owner: Owner_co, received_at: float
    ) -> None:
        self.id = id
        self.lane = lane
        self.record = record
        self.owner = owner  # the control plane's; engines must not use it
        self.received_at = received_at  # monotonic seconds
        self.dispatched_at = received_at  # when the control plane handed it to the engine
        self.cancelled = False


class Report:
    """An engine's report on one work item: `attempts` handler calls made (0 when cancelled
    before its first attempt), `completed_at` in monotonic seconds, `error` the last traceback
    when FAILED or STOPPED, `outputs` what the handler returned to produce when SUCCEEDED
    with outputs=True (None: nothing; else a non-empty list of `output.Output`, in order)."""

    __slots__ = ("attempts", "completed_at", "error", "id", "outcome", "outputs")

    def __init__(
        self,
        id: int,
        outcome: Outcome,
        attempts: int,
        completed_at: float,
        error: str | None = None,
        outputs: list[Output] | None = None,
    ) -> None:
        self.id = id
        self.outcome = outcome
        self.attempts = attempts
        self.completed_at = completed_at
        self.error = error
        self.outputs = outputs

    def __repr__(self) -> str:
        return f"Report(id={self.id}, outcome={self.outcome.name}, attempts={self.attempts})"


class GroupReport(Report):
    """One report on several work items that share its outcome, attempts, `completed_at`,
    error and outputs: `ids`, in submission order (`id` is the first). Batch mode sends one for
    the records of a batch that ran as one handler call, so a batch travels back as one report,
    not one per record; its `outputs` are the batch's, and complete its records together.
    Engines may send either kind; each item is still reported exactly once, and a group of
    items that ran as separate calls never carries outputs (each such item is reported alone).
    """

    __slots__ = ("ids",)

    def __init__(
        self,
        ids: list[int],
        outcome: Outcome,
        attempts: int,
        completed_at: float,
        error: str | None = None,
        outputs: list[Output] | None = None,
    ) -> None:
        super().__init__(ids[0], outcome, attempts, completed_at, error, outputs)
        self.ids = ids

    def __repr__(self) -> str:
        return (
            f"GroupReport(ids={self.ids[0]}..{self.ids[-1]} ({len(self.ids)}), "
            f"outcome={self.outcome.name}, attempts={self.attempts})"
        )


# The native twins (ext/records.pxi, not tracked by the cyclic GC) replace the names above when
# built, unless PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the
# pure-Python definitions. PURE_TWIN keeps those reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "work", ("WorkItem", "Report", "GroupReport"))
