"""The console tables fit 100 columns by default with realistic numbers of the three modes,
`--wide` shows every column, and the latency definitions (sojourn, handler) are printed under
the results."""

from __future__ import annotations

from typing import Any

from test_bench_samples import sample_result

from bench.cli import parse_args
from bench.output.scenario_tables import scenario_tables
from bench.output.table import WIDE_COLUMNS, WIDTH, results_table


def _run(mode: str, tps: float, bound: float, soj_ms: float, hnd_ms: float, **kw: Any) -> Any:
    """A 100,000-record result with the magnitudes of the document's first command."""
    latencies = {
        f"{stat}_{kind}_ms": base * factor
        for kind, base in (("processing", soj_ms), ("handler", hnd_ms))
        for stat, factor in (("avg", 0.5), ("p50", 0.5), ("p95", 0.95), ("p99", 1.0), ("max", 1.01))
    }
    values = dict(
        run_type=mode,
        messages_expected=100_000,
        messages_processed=100_000,
        total_time_sec=100_000 / tps,
        throughput_tps=tps,
        bound_tps=bound,
        efficiency=tps / bound,
        join_time_sec=3.21,
        **latencies,
    )
    values.update(kw)
    return sample_result(**values).to_dict()


def _three_modes(**kw: Any) -> list[dict[str, Any]]:
    return [
        _run("baseline", 188.03, 200.0, 475_445.3, 5_304.2, **kw),
        _run("async", 13_430.21, 20_000.0, 7_100.9, 113.0, **kw),
        _run("process", 5_793.44, 6_400.0, 17_100.9, 771.0, **kw),
    ]


def _scenarios(results: list[dict[str, Any]]) -> None:
    """Every scenario's figures on one of the results, with realistic magnitudes."""
    results[0].update(key_distribution="zipf:1.0", hottest_key_share=0.134)
    results[0]["hottest_partition_share"] = 0.25
    # Open loop on two runs, the longest usual label ("baseline @10000/s") and the new user's
    # magnitudes: a baseline far behind (tens of seconds), the floor and own columns filled.
    for i, (achieved, e2e, own) in enumerate(
        ((83.0, 46_034.3, 45_994.5), (9_986.1, 1_330.5, 31.2))
    ):
        results[i]["rate_tps"] = 10_000.0
        results[i]["open_loop"] = {
            "offered_tps": 9_999.2,
            "achieved_tps": achieved,
            "achieved_bound_tps": 10_000.0,
            "kept_up": achieved > 9_500,
            "e2e_p50_ms": e2e / 1.3,
            "e2e_p95_ms": e2e / 1.1,
            "e2e_p99_ms": e2e,
            "e2e_max_ms": e2e * 1.1,
            "e2e_bound_ms": 5.0,
            "floor_e2e_p50_ms": 1.56,
            "floor_e2e_p99_ms": 1_062.4,
            "consumer_p50_ms": own / 2,
            "consumer_p99_ms": own,
            "warmup_sec": 3.0,
            "producer_linger_ms": 1,
            "consumer_fetch": {"fetch.wait.max.ms": "500 (librdkafka default)"},
        }
    results[2]["members"] = 2
    results[2]["stuck_key"] = {
        "stuck_ms": 10_000.0,
        "window_sec": 10.01,
        "others_tps": 16_892.3,
        "others_bound_tps": 19_800.0,
        "reference_tps": 16_468.2,
        "ratio": 1.03,
    }
    results[2]["group"] = {
        "aggregate_tps": 376.2,
        "member_tps": [189.1, 188.2],
        "group_bound_tps": 400.0,
        "one_member_bound_tps": 200.0,
        "scaling_efficiency": 0.94,
        "speedup_vs_one_member": 2.05,
        "rebalance_time_sec": 3.01,
    }


def _widest(text: str) -> int:
    return max(len(line) for line in text.splitlines())


def test_results_fit_100_columns_and_wide_has_every_column() -> None:
    for batch in ({}, {"batch_size": 100, "calls_tps": 134.3}):
        results = _three_modes(**batch)
        results[1]["rate_tps"] = 10_000.0  # the longest usual label: "async @10000/s"
        narrow = results_table(results)
        assert _widest(narrow) <= WIDTH, narrow
        assert "475,445" in narrow and "5,304" in narrow  # baseline sojourn / handler p99
        wide = results_table(results, wide=True)
        assert _widest(wide) > WIDTH
        header = wide.splitlines()[0]
        for column, _ in WIDE_COLUMNS:
            assert column in header
        assert "475,445.300" in wide and "Hnd p95" in header and "Order!" in header
        assert ("Calls/s" in header) == bool(batch) == ("Calls/s" in narrow)


def test_scenario_tables_fit_100_columns_unless_wide() -> None:
    results = _three_modes()
    _scenarios(results)
    narrow = scenario_tables(results)
    assert len(narrow) == 4  # skew, stuck key, open loop, group
    for table in narrow:
        assert _widest(table) <= WIDTH, table
    open_loop = next(t for t in narrow if t.startswith("Open loop"))
    assert "baseline @10000/s" in open_loop and "46,034" in open_loop  # e2e p99
    assert "Fl. p99" in open_loop and "1,062" in open_loop and "45,994" in open_loop
    wide = "\n".join(scenario_tables(results, wide=True))
    for column in ("fetch.wait.max.ms", "linger.ms", "1-member bound", "E2E bound", "p95"):
        assert column in wide
    assert "fetch.wait.max.ms" not in "\n".join(narrow)


def test_latency_definitions_are_under_the_table() -> None:
    for wide in (False, True):
        text = results_table(_three_modes(), wide=wide)
        notes = text.split("\n\n")[-1]
        assert notes.startswith("Latency, ms: Soj (sojourn) = receipt by the consumer -> done")
        assert "Hnd (handler) = hand-over to the engine -> done" in notes
        assert "baseline" in notes and "--max-in-flight 1" in notes
        assert _widest(notes) <= WIDTH


def test_problems_show_in_the_checks_column() -> None:
    bad = _three_modes()
    bad[0].update(missing=3, complete=False)
    bad[1].update(ordering_violations=2, duplicates=1)
    bad[2].update(complete=False)
    rows = results_table(bad).splitlines()[3:6]
    assert rows[0].endswith("3 miss")
    assert rows[1].endswith("2 order!, 1 dup")
    assert rows[2].endswith("incomplete")


def test_wide_option() -> None:
    assert parse_args(["--wide"]).wide is True
    assert parse_args([]).wide is False
