"""The JSON writer: shape, NaN handling, metadata fields, default path."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import orjson
import pytest
from test_bench_samples import sample_result

from bench.output.environment import environment_metadata
from bench.output.results import default_output_path, load_results, write_results

REQUIRED_FIELDS = (
    "run_type",
    "workload",
    "topic",
    "messages_processed",
    "total_time_sec",
    "throughput_tps",
    "avg_processing_ms",
    "p50_processing_ms",
    "p95_processing_ms",
    "p99_processing_ms",
    "max_processing_ms",
    "avg_handler_ms",
    "p50_handler_ms",
    "p95_handler_ms",
    "p99_handler_ms",
    "max_handler_ms",
    "join_time_sec",
    "bound_tps",
    "efficiency",
    "ordering_violations",
    "duplicates",
    "missing",
    "complete",
)


def test_written_file_has_metadata_and_results(tmp_path: Path) -> None:
    path = write_results(
        tmp_path / "sub" / "r.json",
        {"utc_time": "x", "options": {"a": 1}},
        [sample_result(), sample_result(efficiency=math.nan, bound_tps=math.inf, complete=False)],
    )
    doc = orjson.loads(path.read_bytes())
    assert set(doc) == {"metadata", "results"}
    assert doc["metadata"]["options"] == {"a": 1}
    assert len(doc["results"]) == 2
    for field in REQUIRED_FIELDS:
        assert field in doc["results"][0]
    assert doc["results"][1]["efficiency"] is None  # NaN -> null
    assert doc["results"][1]["bound_tps"] is None  # inf -> null
    assert doc["results"][1]["complete"] is False
    assert load_results(path)["results"][0]["run_type"] == "async"
    assert not list(tmp_path.rglob("*.tmp"))


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"x": 1}')
    with pytest.raises(ValueError, match="not a benchmark results file"):
        load_results(bad)
    bad.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_results(bad)
    with pytest.raises(ValueError, match="no such file"):
        load_results(tmp_path / "missing.json")


def test_default_path_is_a_utc_timestamp() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert default_output_path(when) == Path("bench/results/20260102T030405Z.json")


def test_environment_metadata_fields() -> None:
    meta = environment_metadata()
    for key in (
        "utc_time",
        "git_commit",
        "python",
        "confluent_kafka",
        "librdkafka",
        "codec",
        "cpu_kernel",
        "cpu_model",
        "cores",
        "memory_bytes",
        "os",
    ):
        assert key in meta
    assert meta["cores"] >= 1
    orjson.dumps(meta)  # serialisable as is
