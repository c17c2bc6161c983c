"""The batching engine over a fake inner engine: one call and one report per batch, a
failing batch retried then bisected down to the records that fail alone, per-key order kept
through a split, cancelled records not run."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from engine_support import make_items, report_ids

from pyrallel_consumer.config import build_config
from pyrallel_consumer.engines.attempts import FIRST_TRY, retry_after
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.batch_assembly import Batch
from pyrallel_consumer.engines.batching import BatchingEngine, Piece, _Running
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome, Report, WorkItem


class InlineEngine(Engine):
    """Runs each submitted item at once, with the configured retries and no backoff."""

    def __init__(self, handler: Callable[[Any], Any], retries: int) -> None:
        config = build_config(
            {"bootstrap.servers": "x", "group.id": "g"}, topics=["t"], retries=retries
        )
        super().__init__(handler, config)
        self._reports: list[Report] = []

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        for item in items:
            if item.cancelled:
                self._reports.append(Report(item.id, Outcome.CANCELLED, 0, 0.0))
                continue
            try:
                self.handler(item.record)
                result = FIRST_TRY
            except BaseException as exc:
                result = retry_after(
                    exc, self.handler, item.record, self.config.retry, sleep=lambda s: None
                )
            outcome, attempts, error, _ = result
            self._reports.append(Report(item.id, outcome, attempts, 0.0, error))

    def reports(self) -> list[Report]:
        out, self._reports = self._reports, []
        return out

    def wait(self, timeout: float) -> None:
        return None

    def close(self, timeout: float) -> None:
        return None


class Calls:
    """A batch handler that records every call and fails any batch holding a bad offset."""

    def __init__(self, bad: set[int]) -> None:
        self.bad = bad
        self.calls: list[list[int]] = []
        self.done: list[Record] = []

    def __call__(self, records: list[Record]) -> None:
        offsets = [r.offset for r in records]
        self.calls.append(offsets)
        failing = self.bad.intersection(offsets)
        if failing:
            raise ValueError(f"bad offset {min(failing)}")
        self.done.extend(records)


def batching(handler: Callable[[Any], Any], batch_size: int, retries: int = 2) -> BatchingEngine:
    config = build_config(
        {"bootstrap.servers": "x", "group.id": "g"},
        topics=["t"],
        batch_size=batch_size,
        batch_max_wait_s=0.0,
        max_in_flight=10_000,
    )
    return BatchingEngine(InlineEngine(handler, retries), config, clock=lambda: 0.0)


def run(engine: BatchingEngine, work: list[WorkItem[object]]) -> dict[int, Report]:
    engine.submit(work)
    reports: dict[int, Report] = {}
    for _ in range(10_000):
        if len(reports) == len(work):
            break
        for report in engine.reports():  # a split's pieces report on later calls
            for item_id in report_ids(report):
                assert item_id not in reports
                reports[item_id] = report
    assert len(reports) == len(work)
    return reports


def test_one_call_and_one_report_per_batch() -> None:
    handler = Calls(bad=set())
    engine = batching(handler, batch_size=100)
    reports = run(engine, make_items(1000, keys=1000))
    assert {r.outcome for r in reports.values()} == {Outcome.SUCCEEDED}
    assert len({id(r) for r in reports.values()}) == 10  # a GroupReport per batch
    assert [len(c) for c in handler.calls] == [100] * 10
    assert engine.counts() == {
        "batches": 10,
        "records": 1000,
        "calls": 10,
        "splits": 0,
        "split_calls": 0,
    }


def test_a_bad_record_is_bisected_out_with_its_own_error() -> None:
    handler = Calls(bad={37})
    engine = batching(handler, batch_size=100, retries=2)
    reports = run(engine, make_items(100, keys=100, ordering="unordered"))
    failed = {id_: r for id_, r in reports.items() if r.outcome is Outcome.FAILED}
    assert list(failed) == [38]  # work id = offset + 1
    assert "bad offset 37" in (failed[38].error or "")
    assert sorted(r.offset for r in handler.done) == [n for n in range(100) if n != 37]
    # The pieces holding 37 fail 3 times each: 0-99, 0-49, 25-49, 37-49, 37-42, 37-39, 37
    # (21 calls); their siblings succeed at once: 50-99, 0-24, 25-36, 43-49, 40-42, 38-39 (6).
    counts = engine.counts()
    assert counts["splits"] == 1
    assert counts["calls"] == 27
    assert counts["split_calls"] == 27 - 3
    assert failed[38].attempts == 21


class FailsOnce:
    """A batch handler whose first call fails (a blip), every later one succeeds."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, records: list[Record]) -> None:
        self.calls += 1
        if self.calls == 1:
            raise ConnectionError("database restarting")


@pytest.mark.parametrize(
    ("handler", "says"),
    [
        (Calls(bad={37}), "1 record(s) failed alone, given to on_failure"),
        (FailsOnce(), "no record failed alone (the failure did not recur)"),
    ],
)
def test_a_bisection_ends_with_a_warning_saying_what_it_found(
    handler: Callable[[list[Record]], None], says: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = batching(handler, batch_size=100, retries=0)
    with caplog.at_level("WARNING", logger="pyrallel_consumer.batches"):
        run(engine, make_items(100, keys=100, ordering="unordered"))
    (warning,) = [r.getMessage() for r in caplog.records if "bisecting" in r.getMessage()]
    assert warning.startswith("a batch of 100 records failed; bisecting it took ")
    assert warning.endswith(says)


def test_a_bisection_cut_short_by_the_run_stopping_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run stops (on_failure='stop' elsewhere, stop()) during a bisection: its pieces not
    run are cancelled, and the warning must not call them a failure that did not recur."""
    work = make_items(100, keys=100, ordering="unordered")
    calls: list[int] = []

    def handler(records: list[Record]) -> None:
        calls.append(len(records))
        if len(calls) == 2:  # the first half's call: the run stops meanwhile
            for item in work:
                item.cancelled = True
        raise ValueError("bad batch")

    engine = batching(handler, batch_size=100, retries=0)
    with caplog.at_level("WARNING", logger="pyrallel_consumer.batches"):
        reports = run(engine, work)
    assert calls == [100, 50]
    assert {r.outcome for r in reports.values()} == {Outcome.CANCELLED}
    (warning,) = [r.getMessage() for r in caplog.records if "bisecting" in r.getMessage()]
    assert warning.endswith(
        "the run stopped before it ended (0 record(s) failed alone, 100 not run)"
    )


def test_two_bad_records_both_isolated_and_the_rest_complete_once() -> None:
    handler = Calls(bad={3, 90})
    engine = batching(handler, batch_size=100, retries=0)
    reports = run(engine, make_items(100, keys=7))
    failed = sorted(id_ - 1 for id_, r in reports.items() if r.outcome is Outcome.FAILED)
    assert failed == [3, 90]
    done = [r.offset for r in handler.done]
    assert sorted(done) == [n for n in range(100) if n not in (3, 90)]
    assert len(done) == len(set(done))


def test_per_key_order_holds_through_a_split_and_across_batches() -> None:
    handler = Calls(bad={5})
    engine = batching(handler, batch_size=10, retries=1)
    run(engine, make_items(200, keys=3))
    per_key: dict[int, list[int]] = {}
    for record in handler.done:
        per_key.setdefault(record.offset % 3, []).append(record.offset)
    for offsets in per_key.values():
        assert offsets == sorted(offsets)


def test_cancelled_records_are_not_run_and_reported_cancelled() -> None:
    handler = Calls(bad=set())
    engine = batching(handler, batch_size=4)
    work = make_items(8, keys=8)
    for item in work[:2]:
        item.cancelled = True
    reports = run(engine, work)
    assert [reports[i].outcome for i in (1, 2)] == [Outcome.CANCELLED] * 2
    assert sorted(r.offset for r in handler.done) == list(range(2, 8))


def test_batch_size_above_max_in_flight_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        build_config(
            {"bootstrap.servers": "x", "group.id": "g"},
            topics=["t"],
            batch_size=200,
            max_in_flight=100,
        )


def test_a_piece_is_cancelled_when_all_of_its_records_are() -> None:
    work = make_items(3, keys=3)
    batch = _Running(Batch(work, set()))
    piece = Piece(1, work, ([i.record for i in work], [i.id for i in work]), batch, 0)
    assert piece.record == [item.record for item in work]  # type: ignore[comparison-overlap]
    assert not piece.cancelled
    work[0].cancelled = work[1].cancelled = True
    assert not piece.cancelled
    work[2].cancelled = True
    assert piece.cancelled


def test_a_handler_written_for_one_record_is_named_at_its_first_failed_batch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unannotated record handler given batch_size (handler_check.py cannot tell): the
    batch fails on the list's missing attribute, and one warning says what to change."""

    def one_record(record: Any) -> None:
        record.value.decode()

    engine = batching(one_record, batch_size=10, retries=1)
    with caplog.at_level("WARNING", logger="pyrallel_consumer.batches"):
        reports = run(engine, make_items(20, keys=20, ordering="unordered"))
    assert {r.outcome for r in reports.values()} == {Outcome.FAILED}
    warnings = [r.getMessage() for r in caplog.records if "takes a list" in r.getMessage()]
    assert len(warnings) == 1
    assert "'list' object has no attribute 'value'" in warnings[0]
    assert "batch_size=10" in warnings[0]


def test_a_batch_handler_failing_otherwise_gets_no_such_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = batching(Calls(bad={3}), batch_size=10, retries=0)
    with caplog.at_level("WARNING", logger="pyrallel_consumer.batches"):
        run(engine, make_items(10, keys=10, ordering="unordered"))
    assert not [r for r in caplog.records if "takes a list" in r.getMessage()]
