"""Prometheus metrics over HTTP during a real run: the scraped numbers are stats()' numbers."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from support import wait_for

from pyrallel_consumer import ParallelConsumer, Record
from pyrallel_consumer.metrics import ConsumerMetrics, start_metrics_server

pytestmark = [pytest.mark.integration]

RECORDS = 300
PARTITIONS = 3


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_scraped_metrics_match_stats_during_a_run(
    kafka_broker: Any, new_topic: Callable[..., str], produce: Callable[..., Any]
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produce(kafka_broker, topic, RECORDS)
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    server = start_metrics_server(0, registry=registry)

    def handle(record: Record) -> None:
        if record.offset % 50 == 7:
            raise ValueError("skip me")

    consumer = ParallelConsumer(
        kafka_broker.consumer_config(f"metrics-{uuid.uuid4().hex[:6]}"),
        topics=[topic],
        handler=handle,
        engine="async",
        metrics=metrics,
        on_failure="skip",
        retries=1,
        retry_backoff_s=0.0,
        commit_interval_s=0.2,
    )
    runner = threading.Thread(target=consumer.run, kwargs={"timeout": 120.0})
    runner.start()
    try:
        # Every record completed and committed: the numbers hold still while we compare.
        wait_for(lambda: consumer.stats()["completed"] == RECORDS, "every record completed")
        wait_for(
            lambda: (
                all(
                    p["lag"] == 0 and p["committed"] == p["position"]
                    for p in consumer.stats()["partitions"].values()
                )
                and len(consumer.stats()["partitions"]) == PARTITIONS
            ),
            "every offset committed and the watermarks refreshed",
        )
        scraped = scrape(server.port)
        stats = consumer.stats()
        assert runner.is_alive()  # scraped during the run
    finally:
        consumer.stop()
        runner.join(60)
        server.close()

    def value(name: str, **labels: str) -> float | None:
        return scraped.get((name, tuple(sorted(labels.items()))))

    for key, name in (
        ("received", "pyrallel_records_received_total"),
        ("completed", "pyrallel_records_completed_total"),
        ("failed", "pyrallel_records_failed_total"),
        ("skipped", "pyrallel_records_skipped_total"),
        ("retries", "pyrallel_retries_total"),
        ("dead_lettered", "pyrallel_records_dead_lettered_total"),
        ("fenced", "pyrallel_records_fenced_total"),
        ("in_flight", "pyrallel_in_flight"),
        ("backlog", "pyrallel_backlog"),
    ):
        assert value(name) == stats[key], name
    assert stats["received"] == RECORDS and stats["failed"] > 0
    assert value("pyrallel_paused_partitions") == len(stats["paused_partitions"])
    for key, partition in stats["partitions"].items():
        labels = {"topic": key.topic, "partition": str(key.partition)}
        assert value("pyrallel_partition_committed_offset", **labels) == partition["committed"]
        assert value("pyrallel_partition_lag", **labels) == partition["lag"] == 0
    # The timers: one handler observation per call (first attempts plus retries), and commits.
    assert value("pyrallel_handler_seconds_count") == RECORDS + stats["retries"]
    commits = value("pyrallel_commit_seconds_count")
    assert commits is not None and commits >= 1
