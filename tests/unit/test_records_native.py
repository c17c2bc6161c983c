"""Record, WorkItem, Report and GroupReport behave the same in both twins (record.py and
work.py, ext/records.pxi), and the native ones are never tracked by the cyclic GC."""

from __future__ import annotations

import copy
import gc
import pickle
import weakref
from typing import Any

import pytest
from native_twins import IMPLEMENTATIONS, needs_native, records_twin

import pyrallel_consumer.record as record_module
from pyrallel_consumer.engines.batching import Piece
from pyrallel_consumer.native import import_native
from pyrallel_consumer.work import Outcome


@pytest.fixture(params=IMPLEMENTATIONS)
def twin(request: pytest.FixtureRequest) -> Any:
    return records_twin(request.param)


def test_record_constructor_defaults_and_keywords(twin: Any) -> None:
    record = twin.Record("t", 1, 2, b"k", b"v")
    assert (record.headers, record.timestamp) == (None, 0)
    by_keyword = twin.Record(
        topic="t", partition=1, offset=2, key=b"k", value=b"v", headers=[("h", None)], timestamp=9
    )
    assert (by_keyword.topic, by_keyword.partition, by_keyword.offset) == ("t", 1, 2)
    assert (by_keyword.headers, by_keyword.timestamp) == ([("h", None)], 9)
    with pytest.raises(TypeError):
        twin.Record("t", 1, 2, b"k")


def test_record_is_mutable_compared_by_value_and_unhashable(twin: Any) -> None:
    record = twin.Record("t", 1, 2, None, b"v", [("h", b"x")], 5)
    same = twin.Record("t", 1, 2, None, b"v", [("h", b"x")], 5)
    assert record == same
    assert not record != same  # noqa: SIM202  # __ne__ of its own
    assert isinstance(record, twin.Record)
    for name, value in [("offset", 3), ("key", b"k"), ("headers", None), ("timestamp", 6)]:
        other = copy.copy(same)
        setattr(other, name, value)
        assert getattr(other, name) == value
        assert record != other
        assert not record == other  # noqa: SIM201  # __eq__, not __ne__
    assert record != ("t", 1, 2) and record.__eq__(object()) is NotImplemented
    with pytest.raises(TypeError, match="unhashable"):
        hash(record)
    assert twin.Record.__hash__ is None
    assert repr(record) == "Record(topic='t', partition=1, offset=2, key=None)"


def test_record_pickles(twin: Any) -> None:
    if twin.Record is not record_module.Record:
        pytest.skip("pickle finds a class by its module's name, which binds the twin in use")
    record = twin.Record("t", 1, 2, b"k", None, [("h", None)], 7)
    copied = pickle.loads(pickle.dumps(record))
    assert type(copied) is twin.Record and copied == record


def test_work_item(twin: Any) -> None:
    record = twin.Record("t", 0, 1, None, None)
    item = twin.WorkItem(4, "lane", record, owner="state", received_at=2.5)
    assert (item.id, item.lane, item.record, item.owner) == (4, "lane", record, "state")
    assert (item.received_at, item.dispatched_at, item.cancelled) == (2.5, 2.5, False)
    item.cancelled = True
    item.dispatched_at = 3.0
    item.record = [record]  # batch mode: a list of records
    assert (item.cancelled, item.dispatched_at, item.record) == (True, 3.0, [record])
    alias = twin.WorkItem[int]  # a typing alias for the pure twin, types.GenericAlias native
    assert (alias.__origin__, alias.__args__) == (twin.WorkItem, (int,))


def test_reports(twin: Any) -> None:
    report = twin.Report(3, Outcome.FAILED, 2, 1.5, "trace")
    assert (report.id, report.outcome, report.attempts, report.completed_at, report.error) == (
        3,
        Outcome.FAILED,
        2,
        1.5,
        "trace",
    )
    assert repr(report) == "Report(id=3, outcome=FAILED, attempts=2)"
    assert twin.Report(3, Outcome.SUCCEEDED, 1, 0.0).error is None
    group = twin.GroupReport([5, 6, 7], Outcome.SUCCEEDED, 1, 2.0)
    assert type(group) is twin.GroupReport and type(report) is not twin.GroupReport
    assert isinstance(group, twin.Report) and issubclass(twin.GroupReport, twin.Report)
    assert (group.ids, group.id, group.error) == ([5, 6, 7], 5, None)
    assert repr(group) == "GroupReport(ids=5..7 (3), outcome=SUCCEEDED, attempts=1)"
    group.error = "x"
    assert group.error == "x"


@needs_native
def test_native_instances_are_not_tracked_by_the_gc() -> None:
    twin = records_twin("native")
    record = twin.Record("t", 0, 1, b"k", b"v", [("h", b"x")])
    built = [
        record,
        twin.WorkItem(1, None, record, object(), 0.0),
        twin.Report(1, Outcome.SUCCEEDED, 1, 0.0),
        twin.GroupReport([1, 2], Outcome.SUCCEEDED, 1, 0.0),
    ]
    assert [gc.is_tracked(obj) for obj in built] == [False] * 4


class _Batch:
    """Stands in for a Piece's batch: refers back to its piece, as batching._Running does."""

    piece: Piece


@needs_native
def test_a_python_subclass_of_the_native_work_item_keeps_its_property_and_gc() -> None:
    native = import_native("work")
    if Piece.__mro__[1] is not native.WorkItem:
        pytest.skip("this process runs the pure twins (PYRALLEL_NATIVE=0)")
    item = native.WorkItem(1, None, native.Record("t", 0, 1, None, None), None, 0.0)
    batch = _Batch()
    piece = Piece(9, [item], ([item.record], [item.id]), batch, 0)  # type: ignore[arg-type]
    assert gc.is_tracked(piece)
    assert piece.cancelled is False  # the property, not the base's attribute
    piece.cancelled = True
    assert item.cancelled is True and piece.cancelled is True
    # A cycle through the subclass's own slots is still collected.
    batch.piece = piece
    gone = weakref.ref(batch)
    del batch, piece
    gc.collect()
    assert gone() is None
