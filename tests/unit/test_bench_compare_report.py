"""compare and report on small synthetic results files."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from test_bench_samples import sample_result

from bench.__main__ import main as bench_main
from bench.output import charts, compare, report
from bench.output.results import load_results, write_results
from bench.output.table import WIDTH


def _files(tmp_path: Path) -> tuple[Path, Path]:
    meta_a = {
        "git_commit": "aaa",
        "cores": 2,
        "options": {"num_messages": 10},
        "broker": {"kind": "kafka", "version": "4.1"},
    }
    meta_b = {
        "git_commit": "bbb",
        "cores": 2,
        "options": {"num_messages": 10},
        "broker": {"kind": "kafka", "version": "4.1"},
    }
    a = write_results(
        tmp_path / "a.json",
        meta_a,
        [
            sample_result(run_type="baseline", throughput_tps=100.0, p99_processing_ms=10.0),
            sample_result(run_type="async", throughput_tps=1000.0, p99_processing_ms=50.0),
            sample_result(run_type="async", workload="cpu", throughput_tps=500.0),
        ],
    )
    b = write_results(
        tmp_path / "b.json",
        meta_b,
        [
            sample_result(run_type="baseline", throughput_tps=150.0, p99_processing_ms=5.0),
            sample_result(run_type="async", throughput_tps=2000.0, p99_processing_ms=None),
            sample_result(run_type="process", throughput_tps=700.0),
        ],
    )
    return a, b


def test_ratio() -> None:
    assert compare.ratio(100, 150) == pytest.approx(1.5)
    assert compare.ratio(0, 1) != compare.ratio(0, 1)  # NaN
    assert compare.ratio(None, 1) != compare.ratio(None, 1)


def test_compare_side_by_side(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _files(tmp_path)
    assert bench_main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "git_commit" in out and "aaa" in out and "bbb" in out
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("baseline"))
    # One line per figure under the run: state, TPS, Eff, Avg ms, P99 ms, Join s.
    figures = {line.split("|")[2].strip(): line for line in lines[at : at + 6]}
    assert figures["TPS"].endswith("1.50")  # TPS 150 / 100
    assert figures["P99 ms"].endswith("0.50")  # p99 5 / 10
    rows = [line.split("|")[0].strip() for line in out.splitlines() if "| sleep" in line]
    assert rows == ["baseline", "async"]  # only the rows both files have
    assert bench_main(["compare", str(a), str(b), "--wide"]) == 0
    baseline = next(line for line in capsys.readouterr().out.splitlines() if "baseline" in line)
    assert "1.50" in baseline and "0.50" in baseline  # --wide: every figure on the run's row
    assert "left out, only in A: async / cpu" in out
    assert "left out, only in B: process / sleep" in out


def test_compare_of_all_modes_with_one_mode_shows_the_shared_row_only(tmp_path: Path) -> None:
    modes = ("baseline", "async", "process")
    every = [sample_result(run_type=m, workload=w) for w in ("sleep", "cpu", "io") for m in modes]
    a = write_results(tmp_path / "all.json", {}, every)
    b = write_results(tmp_path / "async.json", {}, [sample_result(run_type="async")])
    text = compare.compare_files(a, b, wide=True)
    table_rows = [line for line in text.splitlines() if line.count("|") > 5]
    assert len(table_rows) == 2 and table_rows[1].startswith("async ")  # the header, one row
    assert " - " not in table_rows[1]
    text = compare.compare_files(a, b)
    assert "left out, only in A: baseline / sleep, process / sleep, baseline / cpu" in text
    assert "only in B" not in text
    none = write_results(tmp_path / "none.json", {}, [sample_result(workload="io2")])
    assert "no run and workload is in both files" in compare.compare_files(b, none)


def test_compare_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = _files(tmp_path)
    assert compare.main([str(a), str(tmp_path / "nope.json")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_report_writes_charts_and_summary(tmp_path: Path) -> None:
    a, b = _files(tmp_path)
    out = tmp_path / "report"
    assert bench_main(["report", str(a), str(b), "--out", str(out)]) == 0
    for name in ("throughput.png", "p99_latency.png"):
        data = (out / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 2000
    summary = (out / "summary.md").read_text()
    assert "## a.json" in summary and "## b.json" in summary
    assert "| baseline | sleep |" in summary
    assert "![throughput.png](throughput.png)" in summary


def test_report_single_file(tmp_path: Path) -> None:
    a, _ = _files(tmp_path)
    written = report.build_report([a], tmp_path / "r1")
    assert [p.name for p in written] == ["throughput.png", "p99_latency.png", "summary.md"]


def test_report_labels_sources_by_file_name_and_one_container_run_as_one(
    tmp_path: Path,
) -> None:
    container_run = [
        write_results(tmp_path / f"20260101T0000Z-{mode}.json", {"run_id": "20260101T0000Z"}, [])
        for mode in ("baseline", "async")
    ]
    other = write_results(tmp_path / "laptop.json", {"run_id": "3f9a2c1e"}, [])
    twin = tmp_path / "twin"
    twin.mkdir()
    same_name = write_results(twin / "laptop.json", {"run_id": "77aa"}, [])
    docs = [(p, load_results(p)) for p in (*container_run, other)]
    assert report.source_labels(docs) == ["20260101T0000Z", "20260101T0000Z", "laptop"]
    assert report.source_labels(docs, ["x", "x", "y"]) == ["x", "x", "y"]
    twins = [(p, load_results(p)) for p in (other, same_name)]
    assert report.source_labels(twins) == ["1: laptop", "2: laptop"]


def _legend(figure: Any) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def _bars(figure: Any) -> dict[str, list[Any]]:
    """Legend label -> the bars drawn for it (matplotlib containers carry the label)."""
    return {c.get_label(): list(c) for c in figure.axes[0].containers}


def test_report_charts_colour_by_mode_hatch_by_file_and_label_by_file_name(
    tmp_path: Path,
) -> None:
    runs = [
        sample_result(run_type="baseline", throughput_tps=10.0),
        sample_result(run_type="async", throughput_tps=100.0),
    ]
    a = write_results(tmp_path / "desk.json", {"run_id": "3f9a2c1e"}, runs)
    b = write_results(tmp_path / "laptop.json", {"run_id": "77aa01bc"}, runs[1:])
    docs = [(p, load_results(p)) for p in (a, b)]
    drawn = dict(report.figures(docs, report.source_labels(docs)))
    throughput = drawn["throughput.png"]
    assert _legend(throughput) == ["baseline (desk)", "async (desk)", "async (laptop)"]
    assert not any("3f9a" in label for label in _legend(throughput))  # no run-id hashes
    bars = {label: bars[0] for label, bars in _bars(throughput).items()}
    assert bars["async (desk)"].get_facecolor() == bars["async (laptop)"].get_facecolor()
    assert bars["baseline (desk)"].get_facecolor() != bars["async (desk)"].get_facecolor()
    assert bars["baseline (desk)"].get_hatch() == bars["async (desk)"].get_hatch()
    assert bars["async (desk)"].get_hatch() != bars["async (laptop)"].get_hatch()
    labelled = dict(report.figures(docs, report.source_labels(docs, ["before", "after"])))
    assert _legend(labelled["p99_latency.png"])[-1] == "async (after)"
    single = dict(report.figures(docs[:1], ["desk"]))
    assert _legend(single["throughput.png"]) == ["baseline", "async"]  # one source: no suffix


def test_report_label_count_must_match_the_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = _files(tmp_path)
    out = str(tmp_path / "r")
    assert report.main([str(a), str(b), "--out", out, "--label", "x"]) == 2
    assert "--label given 1 times for 2 files" in capsys.readouterr().err


def test_report_marks_incomplete_and_profiled_runs_and_skips_missing_values(
    tmp_path: Path,
) -> None:
    incomplete = sample_result(run_type="baseline", complete=False)
    profiled = sample_result(run_type="async", profile_files=["x.prof"])
    never = sample_result(run_type="process", throughput_tps=None, error="setup failed: boom")
    path = write_results(tmp_path / "a.json", {"run_id": "r"}, [incomplete, profiled, never])
    written = report.build_report([path], tmp_path / "out")
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| baseline * |" in summary and "| async * |" in summary
    assert "not measured: setup failed: boom" in summary
    assert "n/a" not in summary
    assert all(p.exists() for p in written)


def test_report_draws_latency_against_offered_rate(tmp_path: Path) -> None:
    runs = [
        sample_result(
            rate_tps=rate,
            open_loop={"offered_tps": rate, "target_tps": rate, "e2e_p99_ms": p99},
        )
        for rate, p99 in ((1000.0, 8.0), (5000.0, 30.0))
    ]
    path = write_results(tmp_path / "a.json", {}, runs)
    written = report.build_report([path], tmp_path / "out")
    assert "latency_vs_rate.png" in [p.name for p in written]
    _, curves = report._curve_series([(path, load_results(path))], ["x"])
    assert [c.values for c in curves] == [[8.0, 30.0]]
    other = write_results(tmp_path / "b.json", {}, runs)
    docs = [(p, load_results(p)) for p in (path, other)]
    curve = dict(report.figures(docs, ["a", "b"]))["latency_vs_rate.png"]
    lines = {line.get_label(): line for line in curve.axes[0].get_lines()}
    assert _legend(curve) == ["async/sleep (a)", "async/sleep (b)"]
    assert lines["async/sleep (a)"].get_color() == lines["async/sleep (b)"].get_color()
    assert lines["async/sleep (a)"].get_linestyle() != lines["async/sleep (b)"].get_linestyle()


def test_log_scale_only_when_values_span_more_than_20x() -> None:
    assert charts.needs_log_scale([10.0, 250.0])
    assert not charts.needs_log_scale([10.0, 150.0, math.nan])
    assert not charts.needs_log_scale([5.0])


def test_compare_shows_completeness_and_warns(tmp_path: Path) -> None:
    a = write_results(tmp_path / "a.json", {}, [sample_result()])
    b = write_results(tmp_path / "b.json", {"complete": False}, [sample_result(complete=False)])
    text = compare.compare_files(a, b)
    assert "complete" in text and "incomplete" in text
    assert "B is an incomplete invocation" in text
    assert "warning: async / sleep: B is incomplete" in text
    rate = write_results(tmp_path / "r.json", {}, [sample_result(rate_tps=500.0, members=2)])
    assert "async @500/s x2" in compare.compare_files(a, rate)


def test_compare_fits_100_columns_unless_wide(tmp_path: Path) -> None:
    """Realistic values (the seed's first command, open-loop labels, a dirty commit, a long
    option) stay within WIDTH by default; --wide has one row per run."""
    results = [
        sample_result(
            run_type=mode,
            rate_tps=10_000.0,
            members=2,
            throughput_tps=tps,
            avg_processing_ms=237_722.65,
            p99_processing_ms=475_445.31,
            complete=False,
        )
        for mode, tps in (("baseline", 188.03), ("async", 13_430.21), ("process", 5_793.44))
    ]
    commit = "bdf374af56818eeacad5e90f42100d8f3ea4cd09"
    meta_a = {"git_commit": commit, "options": {"kafka_config": [["fetch.wait.max.ms", "5"]] * 4}}
    meta_b = {"git_commit": commit[::-1] + "-dirty", "options": {"worker_bulk_per_record_ms": 1}}
    a = write_results(tmp_path / "a.json", meta_a, results)
    b = write_results(tmp_path / "b.json", meta_b, results[:2])
    text = compare.compare_files(a, b)
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text
    assert "bdf374af5681 " in text and "--worker-bulk-per-record-ms" in text
    assert "warning: baseline @10000/s x2 / sleep: A is incomplete" in text
    wide = compare.compare_files(a, b, wide=True)
    assert commit in wide and max(len(line) for line in wide.splitlines()) > WIDTH


def test_compare_exits_1_when_no_run_is_in_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = write_results(tmp_path / "a.json", {}, [sample_result(run_type="async")])
    b = write_results(tmp_path / "b.json", {}, [sample_result(run_type="baseline")])
    assert compare.main([str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert "no run and workload is in both files" in out
    assert "left out, only in A: async / sleep" in out
    assert compare.main([str(a), str(a)]) == 0
