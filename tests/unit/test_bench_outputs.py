"""The bench's --outputs / --exactly-once: options, the handlers that return outputs, the
output-topic check on synthetic records, and where its counters are shown."""

from __future__ import annotations

import asyncio
import functools
import inspect
import pickle
from pathlib import Path
from typing import Any

import pytest
from bench_support import sleep_context
from test_bench_samples import sample_result

from bench.cli import parse_args
from bench.measure.outputs import OutputSample, check_outputs, parse_output_value
from bench.output import compare
from bench.output.results import write_results
from bench.output.scenario_tables import scenario_tables
from bench.output.table import WIDTH, checks
from bench.run import context
from bench.run.members import add_member_counters, member_options
from bench.run.mode import engine_options
from bench.workloads.outputs import output_value, with_outputs
from bench.workloads.sleep import sleep_async, sleep_sync
from pyrallel_consumer import Output, Record

# --- options -------------------------------------------------------------------------------


def test_output_modes_parse() -> None:
    assert parse_args([]).output_mode == "none"
    outputs = parse_args(["--outputs"])
    assert outputs.outputs and not outputs.exactly_once
    assert outputs.output_mode == "at_least_once"
    exactly = parse_args(["--exactly-once", "--commit-interval", "0.1"])
    assert exactly.outputs and exactly.exactly_once  # exactly once implies outputs
    assert exactly.output_mode == "exactly_once"
    assert exactly.commit_interval_s == 0.1
    assert exactly.to_dict()["exactly_once"] is True


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--commit-interval", "0"], "--commit-interval"),
        (["--commit-interval", "x"], "--commit-interval"),
        (["--outputs", "--skip-reset"], "--skip-reset"),
        (["--exactly-once", "--skip-reset"], "--skip-reset"),
    ],
)
def test_bad_output_options_are_refused(
    argv: list[str], names: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert names in capsys.readouterr().err


def _spec(ctx: context.RunContext) -> context.RunSpec:
    return context.run_names(ctx.options, "async", "sleep", "r1d")


def test_consumer_options_of_each_output_mode() -> None:
    plain = sleep_context()
    assert not {"outputs", "transactional_id", "commit_interval_s"} & set(
        engine_options(_spec(plain), plain)
    )
    least = sleep_context("--outputs")
    options = engine_options(_spec(least), least)
    assert options["outputs"] is True and "transactional_id" not in options
    exactly = sleep_context("--exactly-once", "--commit-interval", "0.1")
    spec = _spec(exactly)
    options = engine_options(spec, exactly)
    assert options["outputs"] is True and options["commit_interval_s"] == 0.1
    # one id per run and mode: the group id names the mode and carries the invocation's id
    assert options["transactional_id"] == f"{spec.group_id}-tx"
    assert "async" in options["transactional_id"] and "r1d" in options["transactional_id"]


def test_each_member_gets_its_own_transactional_id() -> None:
    ids = {
        member_options({"transactional_id": "g-tx", "outputs": True}, i)["transactional_id"]
        for i in range(2)
    }
    assert ids == {"g-tx-member-0", "g-tx-member-1"}
    assert member_options({"outputs": True}, 1) == {"outputs": True}
    stats: dict[str, Any] = {"outputs_acknowledged": 5, "transactions_committed": 2}
    add_member_counters(stats, {"outputs_acknowledged": 7, "transactions_committed": 1})
    assert stats == {"outputs_acknowledged": 12, "transactions_committed": 3}


# --- handlers ------------------------------------------------------------------------------


def _record(offset: int, key: bytes = b"key-1") -> Record:
    return Record("in", 2, offset, key, b"v", timestamp=1_700_000_000_000 + offset)


def test_record_handler_returns_one_output_naming_its_input() -> None:
    handler = with_outputs(lambda r: None, "baseline", "in-out")
    output = handler(_record(7))
    assert output == Output("in-out", b"2:7:1700000000007", key=b"key-1")
    assert parse_output_value(output.value) == ((2, 7), 1_700_000_000_007)
    assert parse_output_value(b"000000000012:{}") is None and parse_output_value(None) is None


def test_batch_handler_returns_one_output_per_record() -> None:
    calls: list[int] = []
    handler = with_outputs(lambda rs: calls.append(len(rs)), "process", "o", batch=True)
    outputs = handler([_record(1), _record(2, b"key-2")])
    assert calls == [2]
    assert [(o.key, o.value) for o in outputs] == [
        (b"key-1", output_value(_record(1))),
        (b"key-2", output_value(_record(2))),
    ]


def test_coroutine_handlers_stay_coroutines_and_plain_ones_plain() -> None:
    coroutine = with_outputs(functools.partial(sleep_async, 0.0), "async", "o")
    assert inspect.iscoroutinefunction(getattr(coroutine, "func", coroutine))
    assert asyncio.run(coroutine(_record(3))).value == b"2:3:1700000000003"
    batch = with_outputs(functools.partial(sleep_async, 0.0), "async", "o", batch=True)
    # a plain function for the async engine (e.g. cpu) runs on its thread pool: stays plain
    plain = with_outputs(functools.partial(sleep_sync, 0.0), "async", "o")
    assert not inspect.iscoroutinefunction(getattr(plain, "func", plain))
    assert inspect.iscoroutinefunction(getattr(batch, "func", batch))


def test_wrapped_handlers_pickle_for_worker_processes() -> None:
    handler = with_outputs(functools.partial(sleep_sync, 0.0), "process", "o")
    again = pickle.loads(pickle.dumps(handler))
    assert again(_record(4)) == handler(_record(4))


# --- the output-topic check ----------------------------------------------------------------


def _out(position: int, source: int, key: bytes = b"k", partition: int = 0) -> OutputSample:
    """Output at `position` of output partition `partition`, for input record (0, source)
    whose timestamp is `source` ms; written 5 ms after it."""
    return OutputSample(partition, position, key, source + 5, (0, source), source)


def test_a_clean_output_topic_has_no_problem() -> None:
    samples = [_out(i, i) for i in range(5)]
    check = check_outputs(samples, {(0, i) for i in range(5)}, "key")
    assert (check.read, check.unique, check.missing, check.duplicates) == (5, 5, 0, 0)
    assert (check.ordering_violations, check.extra) == (0, 0)
    assert check.e2e.p50_ms == pytest.approx(5.0) and check.e2e.count == 5


def test_a_missing_output_is_counted() -> None:
    samples = [_out(0, 0), _out(1, 2)]
    check = check_outputs(samples, {(0, 0), (0, 1), (0, 2)}, "key")
    assert check.missing == 1 and check.duplicates == 0 and check.ordering_violations == 0


def test_a_duplicate_output_is_counted_not_as_an_order_violation() -> None:
    # 0, 1, 2, then 1 and 2 again (a redo after a crash): two duplicates, order kept
    samples = [_out(0, 0), _out(1, 1), _out(2, 2), _out(3, 1), _out(4, 2)]
    check = check_outputs(samples, {(0, 0), (0, 1), (0, 2)}, "key")
    assert check.duplicates == 2 and check.missing == 0 and check.ordering_violations == 0


def test_outputs_out_of_input_order_are_counted_per_key_in_log_order() -> None:
    # key a: inputs 0, 2, 1 in the output log (one violation); key b in order on another
    # output partition; samples given shuffled: the log order is (partition, offset)
    samples = [
        _out(2, 1, b"a"),
        _out(0, 0, b"a"),
        _out(1, 2, b"a"),
        _out(1, 4, b"b", partition=1),
        _out(0, 3, b"b", partition=1),
    ]
    expected = {(0, i) for i in range(5)}
    assert check_outputs(samples, expected, "key").ordering_violations == 1
    assert check_outputs(samples, expected, "partition").ordering_violations == 1
    assert check_outputs(samples, expected, "unordered").ordering_violations == 0
    # another key's output in between is no violation: keys are independent
    interleaved = [_out(0, 3, b"b"), _out(1, 0, b"a"), _out(2, 4, b"b"), _out(3, 1, b"a")]
    assert (
        check_outputs(interleaved, {(0, 0), (0, 1), (0, 3), (0, 4)}, "key").ordering_violations == 0
    )


def test_outputs_of_records_not_measured_are_extra_and_left_out() -> None:
    warm_up = _out(0, 100)  # an open loop's warm-up record: not expected
    garbled = OutputSample(0, 1, b"k", 0, None)
    check = check_outputs([warm_up, garbled, _out(2, 0)], {(0, 0)}, "key")
    assert check.extra == 2 and check.read == 3 and check.unique == 1
    assert check.missing == 0 and check.duplicates == 0


# --- where the counters are shown ----------------------------------------------------------


def _figures(**overrides: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "mode": "exactly_once",
        "topic": "t-out",
        "read": 10,
        "missing": 0,
        "duplicates": 0,
        "ordering_violations": 0,
        "extra": 0,
        "e2e_p50_ms": 12.0,
        "e2e_p99_ms": 40.0,
        "error": None,
    }
    figures.update(overrides)
    return figures


def test_checks_column_and_outputs_table() -> None:
    plain = sample_result().to_dict()
    clean = sample_result(outputs=_figures()).to_dict()
    bad = sample_result(outputs=_figures(missing=3, duplicates=2, ordering_violations=1))
    assert checks(plain) == "ok" and checks(clean) == "ok"
    assert checks(bad.to_dict()) == "1 out-order!, 2 out-dup, 3 out-miss"
    assert scenario_tables([plain]) == []
    (table,) = scenario_tables([plain, clean])
    assert table.startswith("Outputs") and "exactly once" in table and "40.0" in table
    assert max(len(line) for line in table.splitlines()) <= WIDTH


def test_compare_shows_the_output_mode_and_figures(tmp_path: Path) -> None:
    a = write_results(
        tmp_path / "a.json", {"output_mode": "none"}, [sample_result(throughput_tps=100.0)]
    )
    b = write_results(
        tmp_path / "b.json",
        {"output_mode": "at_least_once"},
        [sample_result(throughput_tps=95.0, outputs=_figures(mode="at_least_once"))],
    )
    text = compare.compare_files(a, b)
    assert "output_mode" in text and "at_least_once" in text
    assert "Out e2e p99" in text and "0.95" in text
    plain = compare.compare_files(a, a)
    assert "Out e2e" not in plain
