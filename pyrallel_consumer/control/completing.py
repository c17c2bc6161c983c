"""Records completing, per turn in one pass: those whose partition is still assigned
(`unrevoked`), their offsets marked in their partition states (`complete_offsets`), and the
`Completion`s `on_complete` receives (`completions`).

A native twin (ext/completing.pxi, in pyrallel_consumer._record_path) runs the same loops in C
when built (pyrallel_consumer/native.py): they run once per record, on the control thread.

Ownership: the control thread (called by reports.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.native import bind_twin
from pyrallel_consumer.work import Report, WorkItem

Item = WorkItem[PartitionState]


def unrevoked(items: Sequence[Item]) -> list[Item]:
    """The items whose partition state (`item.owner`) is not revoked, in order."""
    return [item for item in items if not item.owner.revoked]


def complete_offsets(items: Sequence[Item]) -> None:
    """Mark each item's record offset completed in its partition state (`item.owner`)."""
    for item in items:
        item.owner.complete(item.record.offset)


def completions(
    items: Sequence[Item], reports: Report | list[Report], ok: bool
) -> list[Completion]:
    """One `Completion` per item: items[i] under reports[i] when `reports` is a list, else
    every item under the one report. `ok`: the handler succeeded."""
    # tuple.__new__ rather than Completion(...): the named tuple's own __new__ is Python
    # code, a frame per record (107 ns against 277 ns per record, timeit, CPython 3.11).
    new = tuple.__new__
    out = []
    for i, item in enumerate(items):
        report = reports[i] if isinstance(reports, list) else reports
        record = item.record
        out.append(
            new(
                Completion,
                (
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    item.received_at,
                    report.completed_at,
                    report.attempts,
                    ok,
                    report.error,
                    item.dispatched_at,
                ),
            )
        )
    return out


# The native twin (ext/completing.pxi) replaces the names above when built, unless
# PYRALLEL_NATIVE=0 (native.py). Hidden from mypy, which checks against the pure-Python
# definitions. PURE_TWIN keeps them reachable, for the tests that run against both.
if not TYPE_CHECKING:
    PURE_TWIN = bind_twin(globals(), "completing", ("unrevoked", "complete_offsets", "completions"))
