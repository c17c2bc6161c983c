"""Prometheus metrics: the collector reads the stats() snapshot; the two timers observe."""

from __future__ import annotations

import asyncio
import inspect
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.metrics import COUNTERS, ConsumerMetrics, start_metrics_server
from pyrallel_consumer.topic_partition import TopicPartition

STATS: dict[str, Any] = {
    "received": 12,
    "completed": 10,
    "retries": 3,
    "failed": 2,
    "skipped": 0,
    "dead_lettered": 2,
    "cancelled": 1,
    "already_completed": 0,
    "fenced": 1,
    "in_flight": 2,
    "backlog": 0,
    "dead_lettering": 0,
    "paused_partitions": [TopicPartition("orders", 1)],
    "partitions": {
        TopicPartition("orders", 0): {"committed": 7, "lag": 3},
        TopicPartition("orders", 1): {"committed": None, "lag": None},
    },
    "engine_info": {"engine": "process", "worker_restarts": 4},
}


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels or None)


def test_counters_and_gauges_are_the_stats_snapshot() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    metrics.attach(lambda: STATS)
    assert sample(registry, "pyrallel_records_received_total") == 12
    assert sample(registry, "pyrallel_records_completed_total") == 10
    assert sample(registry, "pyrallel_records_failed_total") == 2
    assert sample(registry, "pyrallel_retries_total") == 3
    assert sample(registry, "pyrallel_records_dead_lettered_total") == 2
    assert sample(registry, "pyrallel_records_fenced_total") == 1
    assert sample(registry, "pyrallel_worker_restarts_total") == 4
    assert sample(registry, "pyrallel_in_flight") == 2
    assert sample(registry, "pyrallel_backlog") == 0
    assert sample(registry, "pyrallel_paused_partitions") == 1
    assert sample(registry, "pyrallel_partition_lag", topic="orders", partition="0") == 3
    assert (
        sample(registry, "pyrallel_partition_committed_offset", topic="orders", partition="0") == 7
    )
    assert sample(registry, "pyrallel_partition_lag", topic="orders", partition="1") is None


def test_every_counter_of_stats_is_a_metric() -> None:
    """Each of stats()'s counters is exported, under its own name (before, the transaction
    counters were not)."""
    counters = {name: i + 1 for i, name in enumerate(Counters().as_dict())}
    registry = CollectorRegistry()
    ConsumerMetrics(registry).attach(lambda: {**STATS, **counters})  # type: ignore[arg-type, return-value]
    for name, value in counters.items():
        metric, _ = COUNTERS[name]
        assert sample(registry, f"pyrallel_{metric}_total") == value, name


def test_second_metrics_in_one_registry_is_refused_with_the_fix() -> None:
    registry = CollectorRegistry()
    first = ConsumerMetrics(registry)
    with pytest.raises(ValueError, match=r"namespace=\.\.\. or registry="):
        ConsumerMetrics(registry)
    ConsumerMetrics(registry, namespace="other")
    first.unregister()
    ConsumerMetrics(registry)  # the namespace is free again


def test_handler_timer_observes_sync_and_async_handlers() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)

    def handle(record: object) -> int:
        return 1

    async def handle_async(record: object) -> int:
        return 2

    assert metrics.timed_handler(handle)(None) == 1  # type: ignore[arg-type]
    timed_async = metrics.timed_handler(handle_async)
    assert inspect.iscoroutinefunction(timed_async)
    assert asyncio.run(timed_async(None)) == 2  # type: ignore[arg-type]
    assert sample(registry, "pyrallel_handler_seconds_count") == 2


def test_consumer_feeds_the_metrics_it_is_given() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    consumer = ParallelConsumer(
        {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"},
        topics=["t"],
        handler=lambda record: None,
        engine="async",  # scraped before run(): the engine has not started
        metrics=metrics,
    )
    assert consumer.metrics is metrics
    assert sample(registry, "pyrallel_records_received_total") == 0
    with pytest.raises(TypeError, match="metrics must be"):
        ParallelConsumer(
            {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"},
            topics=["t"],
            handler=lambda record: None,
            metrics="yes",  # type: ignore[arg-type]
        )


def test_batch_mode_counters_come_from_stats_batches() -> None:
    registry = CollectorRegistry()
    metrics = ConsumerMetrics(registry)
    batches = {"batches": 5, "records": 480, "calls": 7, "splits": 1, "split_calls": 2}
    metrics.attach(lambda: {**STATS, "batches": batches})
    assert sample(registry, "pyrallel_batches_total") == 5
    assert sample(registry, "pyrallel_batch_records_total") == 480
    assert sample(registry, "pyrallel_batch_calls_total") == 7
    assert sample(registry, "pyrallel_batch_splits_total") == 1
    metrics.unregister()
    plain = CollectorRegistry()
    ConsumerMetrics(plain).attach(lambda: STATS)
    assert sample(plain, "pyrallel_batches_total") is None  # not in batch mode


def test_the_metrics_server_serves_until_closed_and_then_frees_its_port() -> None:
    """start_metrics_server returns a handle: port 0 gets a free port, a scrape reads the
    registry, and close() stops the server so the port can be bound again."""
    registry = CollectorRegistry()
    ConsumerMetrics(registry).attach(lambda: STATS)
    with start_metrics_server(0, registry=registry) as server:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        assert "pyrallel_records_completed_total 10.0" in body
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)
    with start_metrics_server(server.port, registry=CollectorRegistry()) as again:
        assert again.port == server.port  # the port was free again
    server.close()  # a second close is harmless
