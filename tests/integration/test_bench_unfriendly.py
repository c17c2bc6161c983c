"""The bench's unfriendly cases, each a short real run on Apache Kafka: skewed keys, a stuck
key, an open-loop rate and a group of two members. They check that every record was processed
and that the scenario's figures are present and consistent, never how fast anything was."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.run.floor import warm_up
from bench.run_parallel_benchmark import EXIT_OK, main

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run(broker: Any, tmp_path: Path, *argv: str) -> list[dict[str, Any]]:
    out = tmp_path / "results.json"
    status = main(
        [
            "--bootstrap-servers",
            broker.bootstrap_servers,
            "--num-keys",
            "20",
            "--num-partitions",
            "4",
            "--worker-sleep-ms",
            "1",
            "--topic-prefix",
            f"bench-sc-{tmp_path.name}",
            "--no-progress",
            "--json-output",
            str(out),
            *argv,
        ]
    )
    results: list[dict[str, Any]] = orjson.loads(out.read_bytes())["results"]
    assert status == EXIT_OK, [r["error"] for r in results]
    for result in results:
        assert result["complete"] and result["missing"] == 0
        assert result["ordering_violations"] == 0
    return results


def test_key_distribution_hot(kafka_broker: Any, tmp_path: Path) -> None:
    (result,) = _run(
        kafka_broker,
        tmp_path,
        "--num-messages",
        "2000",
        "--key-distribution",
        "hot:0.5",
        "--skip-baseline",
        "--skip-process",
    )
    assert result["key_distribution"] == "hot:0.5"
    assert result["hottest_key_share"] == pytest.approx(0.5)
    # the hot key's 1000 records of 1 ms run one after another: 2000 / 1 s
    assert result["bound_tps"] == pytest.approx(2000)


def test_stuck_key_reports_others_and_a_reference(kafka_broker: Any, tmp_path: Path) -> None:
    results = _run(
        kafka_broker,
        tmp_path,
        "--num-messages",
        "2000",
        "--stuck-key-ms",
        "1000",
        "--skip-baseline",
    )
    for result in results:
        stuck = result["stuck_key"]
        assert stuck["key"] == "key-0" and stuck["stuck_ms"] == 1000
        assert stuck["window_sec"] >= 1.0  # the record really waited its time
        assert stuck["others_completed"] > 0
        assert stuck["reference_complete"] and stuck["reference_tps"] > 0
        assert stuck["ratio"] is not None


def test_open_loop_rate_reports_end_to_end_latency(kafka_broker: Any, tmp_path: Path) -> None:
    (result,) = _run(
        kafka_broker,
        tmp_path,
        "--num-messages",
        "1000",
        "--rate",
        "1000",
        "--warmup-s",
        "0.5",
        "--skip-baseline",
        "--skip-process",
    )
    loop = result["open_loop"]
    # The warm-up's 500 records were consumed but are in no figure.
    assert loop["warmup_sec"] == 0.5 and loop["warmup_records"] == 500
    assert result["messages_expected"] == result["messages_processed"] == 1000
    # Open loop: bound and efficiency against min(offered, bound), the consumer's own beside.
    assert result["bound_tps"] == 1000 and loop["consumer_bound_tps"] > 1000
    # The floor: the same 1000 measured records through a plain consume loop.
    assert loop["floor_records"] == 1000 and loop["floor_error"] is None
    assert 0 < loop["floor_e2e_p50_ms"] <= loop["floor_e2e_p99_ms"] <= loop["floor_e2e_max_ms"]
    assert loop["e2e_bound_ms"] <= loop["consumer_p50_ms"] <= loop["consumer_p99_ms"]
    metadata = orjson.loads((tmp_path / "results.json").read_bytes())["metadata"]
    assert metadata["client_settings"]["producer_open_loop"]["acks"] == "all"
    assert loop["producer_settings"] == metadata["client_settings"]["producer_open_loop"]
    assert result["rate_tps"] == 1000 and loop["target_tps"] == 1000
    assert loop["offered_tps"] > 0 and loop["achieved_tps"] > 0
    assert loop["kept_up"] is not None
    assert loop["e2e_p50_ms"] <= loop["e2e_p99_ms"] <= loop["e2e_max_ms"]
    assert loop["e2e_p50_ms"] >= loop["e2e_bound_ms"]  # nothing completes before its work
    assert loop["producer_linger_ms"] == 1
    assert "fetch.wait.max.ms" in loop["consumer_fetch"]


def test_broker_warm_up_reports_what_it_measured(kafka_broker: Any) -> None:
    figures = warm_up(kafka_broker.bootstrap_servers)
    assert figures["error"] is None
    assert figures["records"] == figures["seconds"] * figures["rate_tps"]
    assert 0 < figures["e2e_p50_ms"] <= figures["e2e_p99_ms"]


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_two_members_share_the_partitions(kafka_broker: Any, tmp_path: Path, protocol: str) -> None:
    extra = [] if protocol == "classic" else ["--kafka-config", "group.protocol=consumer"]
    one, two = _run(
        kafka_broker,
        tmp_path,
        "--num-messages",
        "400",
        "--members",
        "1,2",
        "--skip-async",
        "--skip-process",
        *extra,
    )
    assert one["group"] is None and one["members"] == 1
    group = two["group"]
    assert two["members"] == 2 and group["group_protocol"] == protocol
    assert sum(group["member_records"]) == 400
    assert all(records > 0 for records in group["member_records"])  # both got partitions
    assert all(join is not None for join in group["member_join_sec"])
    assert group["one_member_tps"] == one["throughput_tps"]
    assert group["scaling_efficiency"] is not None
