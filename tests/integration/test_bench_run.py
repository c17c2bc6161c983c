"""One short real benchmark run against Apache Kafka: every record processed, JSON shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.run_parallel_benchmark import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RESULT_FIELDS = (
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
METADATA_FIELDS = (
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
    "broker",
    "options",
)


def _load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


def test_all_workloads_all_modes(
    kafka_broker: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    status = main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--num-messages",
            "200",
            "--num-keys",
            "20",
            "--num-partitions",
            "4",
            "--workload",
            "all",
            "--worker-sleep-ms",
            "1",
            "--worker-io-sleep-ms",
            "1",
            "--worker-cpu-iterations",
            "100",
            "--timeout-sec",
            "60",
            "--topic-prefix",
            f"bench-it-{tmp_path.name}",
            "--json-output",
            str(out),
            "--no-progress",
        ]
    )
    doc = _load(out)
    assert set(doc) == {"metadata", "results"}
    for field in METADATA_FIELDS:
        assert field in doc["metadata"], field
    assert doc["metadata"]["broker"]["bootstrap_servers"] == kafka_broker.bootstrap_servers
    runs = [(r["run_type"], r["workload"]) for r in doc["results"]]
    assert runs == [
        (m, w) for w in ("sleep", "cpu", "io") for m in ("baseline", "async", "process")
    ]
    for result in doc["results"]:
        for field in RESULT_FIELDS:
            assert field in result, field
        label = f"{result['run_type']}/{result['workload']}: {result.get('error')}"
        assert result["messages_processed"] == 200, label
        assert result["missing"] == 0 and result["complete"] is True, label
        assert result["ordering_violations"] == 0, label
        assert result["throughput_tps"] > 0 and result["bound_tps"] > 0, label
        assert result["topic"].endswith(f"-{result['run_type']}-{result['workload']}")
        # handed to the engine after its receipt: the handling is part of the sojourn
        assert 0 < result["p50_handler_ms"] <= result["p50_processing_ms"], label
        assert result["max_handler_ms"] <= result["max_processing_ms"], label
    assert doc["metadata"]["complete"] is True
    assert status == 0
    printed = capsys.readouterr().out
    table = printed[printed.index("Throughput (--wide") : printed.index("JSON summary")]
    assert max(len(line) for line in table.splitlines()) <= 100
    assert "Hnd p99" in table and "Soj (sojourn) = receipt by the consumer -> done" in table


def test_timeout_writes_partial_results(kafka_broker: Any, tmp_path: Path) -> None:
    # One partition in partition order: 200 records x 100 ms one at a time cannot finish in 4 s.
    out = tmp_path / "partial.json"
    status = main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--num-messages",
            "200",
            "--num-partitions",
            "1",
            "--ordering",
            "partition",
            "--worker-sleep-ms",
            "100",
            "--timeout-sec",
            "4",
            "--skip-baseline",
            "--skip-process",
            "--topic-prefix",
            f"bench-to-{tmp_path.name}",
            "--json-output",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 1
    doc = _load(out)
    assert doc["metadata"]["complete"] is False
    (result,) = doc["results"]
    assert result["complete"] is False
    assert 0 < result["messages_processed"] < 200
    assert "timeout" in result["error"]
