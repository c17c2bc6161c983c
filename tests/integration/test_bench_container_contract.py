"""The bench's side of the container driver's contract, against a real broker: the run id the
driver gives every mode (PYRALLEL_RUN_ID) and the cpu service time it measured once
(--cpu-service-ms) are the ones the results carry, and the bound is computed from that time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.run_parallel_benchmark import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_results_carry_the_given_run_id_and_cpu_service_time(
    kafka_broker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYRALLEL_RUN_ID", "20260101T000000Z")
    out = tmp_path / "20260101T000000Z-baseline.json"
    status = main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--num-messages",
            "100",
            "--num-partitions",
            "2",
            "--workload",
            "cpu",
            "--worker-cpu-iterations",
            "10",
            "--cpu-service-ms",
            "0.5",
            "--skip-async",
            "--skip-process",
            "--topic-prefix",
            f"bench-contract-{tmp_path.name}"[:40],
            "--no-progress",
            "--json-output",
            str(out),
        ]
    )
    assert status == 0
    doc = orjson.loads(out.read_bytes())
    metadata, (run,) = doc["metadata"], doc["results"]
    assert metadata["run_id"] == "20260101T000000Z"
    assert metadata["cpu_service_ms"] == 0.5 and metadata["cpu_service_source"] == "given"
    assert metadata["options"]["cpu_service_ms"] == 0.5
    assert run["bound_tps"] == pytest.approx(2000.0)  # one record at a time, 0.5 ms each
    assert run["group_id"].endswith("-20260101T000000Z")
