"""Synthetic benchmark results shared by the bench tests (imported by the other
test_bench_* modules; named test_* to stay with them)."""

from __future__ import annotations

from typing import Any

from bench.output.results import RunResult


def sample_result(**overrides: Any) -> RunResult:
    values: dict[str, Any] = dict(
        run_type="async",
        workload="sleep",
        topic="t",
        group_id="g",
        ordering="key",
        messages_expected=10,
        messages_processed=10,
        total_time_sec=0.5,
        throughput_tps=20.0,
        avg_processing_ms=1.0,
        p50_processing_ms=1.0,
        p95_processing_ms=2.0,
        p99_processing_ms=3.0,
        max_processing_ms=4.0,
        join_time_sec=0.1,
        wall_time_sec=1.0,
        bound_tps=40.0,
        bound_parallelism=1,
        service_time_ms=5.0,
        efficiency=0.5,
        ordering_violations=0,
        duplicates=0,
        missing=0,
        failed=0,
        complete=True,
    )
    values.update(overrides)
    return RunResult(**values)


def test_sample_result_overrides() -> None:
    assert sample_result(run_type="process").to_dict()["run_type"] == "process"
