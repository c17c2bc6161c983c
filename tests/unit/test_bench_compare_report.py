"""compare and report on small synthetic results files."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_bench_samples import sample_result

from bench.__main__ import main as bench_main
from bench.output import compare, report
from bench.output.results import write_results


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
    baseline = next(line for line in out.splitlines() if line.startswith("baseline"))
    assert "1.50" in baseline  # TPS 150 / 100
    assert "0.50" in baseline  # p99 5 / 10
    assert any(line.startswith("process") for line in out.splitlines())  # only in B
    assert any(line.startswith("async    | cpu") for line in out.splitlines())  # only in A


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
