"""Every engine hands the handler's outputs (outputs=True) back in its reports: record and batch
handlers, sync and async, first attempts and retries, the process engine through its codec.
A return value that is not outputs is a failed attempt; with outputs off, return values are
ignored as before, except an Output, which would be lost: a failed attempt too."""

from __future__ import annotations

from typing import Any

import outputs_handlers as h
import pytest
from engine_support import collect, engine_config, make_items, process_engine

from pyrallel_consumer.engines.asyncio_engine import AsyncEngine
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.engines.baseline import BaselineEngine
from pyrallel_consumer.engines.batching import BatchingEngine
from pyrallel_consumer.output import Output
from pyrallel_consumer.work import Outcome, Report

COUNT = 20


def started(kind: str, handler: Any, engines: list[Engine], **options: Any) -> Engine:
    engine: Engine
    if kind == "process":
        engine = process_engine(handler, engines, **options)
    else:
        engine_class = BaselineEngine if kind == "baseline" else AsyncEngine
        engine = engine_class(handler, engine_config(engine_class.name, **options))
        engines.append(engine)
    if options.get("batch_size"):
        engine = BatchingEngine(engine, engine.config)
    engine.start()
    return engine


KINDS = ["baseline", "async", "process"]


@pytest.mark.parametrize("kind", KINDS)
def test_each_record_reports_its_outputs(kind: str, engines: list[Engine]) -> None:
    handler = h.one_async if kind == "async" else h.one
    engine = started(kind, handler, engines, outputs=True)
    engine.submit(make_items(COUNT, keys=4))
    reports = collect(engine, COUNT)
    for item_id, report in reports.items():
        offset = item_id - 1
        assert report.outcome is Outcome.SUCCEEDED
        assert report.outputs == [
            Output(
                "out",
                b"v%d" % offset,
                key=b"key-%d" % (offset % 4),
                headers=[("n", b"%d" % offset)],
            )
        ]


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
def test_none_and_several_outputs_keep_their_order(kind: str, engines: list[Engine]) -> None:
    engine = started(kind, h.two_or_none, engines, outputs=True)
    engine.submit(make_items(COUNT, keys=4))
    for item_id, report in collect(engine, COUNT).items():
        offset = item_id - 1
        if offset % 2:
            assert report.outputs is None
        else:
            assert report.outputs is not None
            assert [(o.value, o.partition) for o in report.outputs] == [
                (b"a%d" % offset, None),
                (b"b%d" % offset, 1),
            ]


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
def test_a_generator_handler_yields_its_outputs(kind: str, engines: list[Engine]) -> None:
    engine = started(kind, h.generated, engines, outputs=True)
    engine.submit(make_items(3, keys=1))
    for item_id, report in collect(engine, 3).items():
        assert report.outputs == [Output("out", str(item_id - 1))]


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
def test_a_return_value_that_is_not_outputs_is_a_failed_attempt(
    kind: str, engines: list[Engine]
) -> None:
    engine = started(kind, h.not_outputs, engines, outputs=True, retries=1)
    engine.submit(make_items(2, keys=1))
    for report in collect(engine, 2).values():
        assert report.outcome is Outcome.FAILED and report.attempts == 2
        assert report.error is not None and "returned an iterable holding a int" in report.error


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
def test_outputs_off_ignores_return_values(kind: str, engines: list[Engine]) -> None:
    engine = started(kind, h.not_outputs, engines)
    engine.submit(make_items(2, keys=1))
    for report in collect(engine, 2).values():
        assert report.outcome is Outcome.SUCCEEDED and report.outputs is None


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
@pytest.mark.parametrize("batch", [False, True], ids=["record", "batch"])
def test_outputs_returned_with_outputs_off_fail_the_attempt_naming_the_fix(
    kind: str, batch: bool, engines: list[Engine]
) -> None:
    """An Output returned while outputs=False would be dropped with its record committed:
    a failed attempt instead, whose error says to pass outputs=True."""
    handler = h.batch if batch else h.one_async if kind == "async" else h.one
    options: dict[str, Any] = {"batch_size": 5, "max_in_flight": 20} if batch else {}
    engine = started(kind, handler, engines, retries=0, **options)
    engine.submit(make_items(10, keys=10, ordering="unordered"))
    for report in collect(engine, 10).values():
        assert report.outcome is Outcome.FAILED
        assert report.error is not None
        assert "returned an Output" in report.error and "pass outputs=True" in report.error


@pytest.mark.parametrize("kind", ["baseline", "async"])
def test_a_retry_that_succeeds_reports_its_outputs(kind: str, engines: list[Engine]) -> None:
    h._flaky_seen.clear()
    engine = started(kind, h.flaky_then_one, engines, outputs=True, retries=2)
    engine.submit(make_items(4, keys=2))
    for item_id, report in collect(engine, 4).items():
        assert report.outcome is Outcome.SUCCEEDED and report.attempts == 2
        assert report.outputs is not None and report.outputs[0].value == b"v%d" % (item_id - 1)


@pytest.mark.parametrize("kind", ["baseline", "async", "process"])
def test_a_batch_reports_the_outputs_of_the_whole_batch(kind: str, engines: list[Engine]) -> None:
    engine = started(kind, h.batch, engines, outputs=True, batch_size=5, max_in_flight=20)
    engine.submit(make_items(10, keys=10, ordering="unordered"))
    reports = collect(engine, 10)
    seen: dict[int, Report] = {id(r): r for r in reports.values()}
    values = sorted(o.value for r in seen.values() for o in r.outputs or [])
    assert values == sorted(b"v%d" % offset for offset in range(10))
    for report in seen.values():  # each batch's outputs are its own records'
        ids = getattr(report, "ids", [report.id])
        assert sorted(o.value for o in report.outputs or []) == sorted(
            b"v%d" % (i - 1) for i in ids
        )


def test_an_outputs_repr_counts_its_value_in_bytes() -> None:
    assert repr(Output("out", b"v")) == "Output(topic='out', key=None, value=<1 byte>)"
    assert repr(Output("out", b"v" * 1200, partition=2)).endswith(
        "value=<1,200 bytes>, partition=2)"
    )
