"""Short --outputs and --exactly-once benchmark runs against Apache Kafka: every output
written once, in order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.run.warm_writes import WARM_UP_WRITES, warm_up_writes
from bench.run_parallel_benchmark import main

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 2000


@pytest.mark.parametrize(
    ("flags", "mode"),
    [
        (["--outputs"], "at_least_once"),
        (["--exactly-once", "--commit-interval", "0.1"], "exactly_once"),
    ],
)
def test_outputs_run_checks_its_output_topic(
    flags: list[str],
    mode: str,
    kafka_broker: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "results.json"
    status = main(
        [
            "--bootstrap-servers",
            kafka_broker.bootstrap_servers,
            "--num-messages",
            str(RECORDS),
            "--num-keys",
            "100",
            "--num-partitions",
            "4",
            "--worker-sleep-ms",
            "1",
            "--skip-baseline",
            "--skip-process",
            *flags,
            "--timeout-sec",
            "60",
            "--topic-prefix",
            f"bench-out-{tmp_path.name}",
            "--json-output",
            str(out),
            "--no-progress",
        ]
    )
    doc: dict[str, Any] = orjson.loads(out.read_bytes())
    assert doc["metadata"]["output_mode"] == mode
    (result,) = doc["results"]
    outputs = result["outputs"]
    assert outputs is not None, result.get("error")
    assert outputs["error"] is None, outputs["error"]
    assert outputs["mode"] == mode
    assert outputs["topic"] == f"{result['topic']}-out"
    assert outputs["read"] >= RECORDS
    assert outputs["missing"] == 0 and outputs["duplicates"] == 0, outputs
    assert outputs["ordering_violations"] == 0 and outputs["extra"] == 0, outputs
    assert outputs["timestamp_type"] == "log_append_time"
    assert 0 <= outputs["e2e_p50_ms"] <= outputs["e2e_p99_ms"]
    assert outputs["outputs_acknowledged"] == RECORDS
    if mode == "exactly_once":  # one transaction per commit interval, none aborted
        assert outputs["transactional_id"] == f"{result['group_id']}-tx"
        assert outputs["transactions_committed"] >= 1
        assert outputs["transactions_aborted"] == 0
    assert result["complete"] is True and status == 0, result.get("error")
    assert "Outputs (read back with read_committed" in capsys.readouterr().out


def test_the_writers_warm_up_commits_its_records_with_both_producers(kafka_broker: Any) -> None:
    result = warm_up_writes(kafka_broker.bootstrap_servers, transactional=True)
    assert "error" not in result
    assert result["idempotent_s"] > 0 and result["transactional_s"] > 0
    assert result["records"] == WARM_UP_WRITES
