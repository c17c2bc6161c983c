"""Prometheus metrics of a ParallelConsumer, declared in this one place (the `metrics` extra:
`pip install 'pyrallel-consumer[metrics]'`).

Counters and gauges are read from `ParallelConsumer.stats()` when Prometheus scrapes, so they
are the very numbers stats() shows and cost nothing between scrapes. Two histograms need an
observation where the time is spent: handler time (a timer around each handler call, for the
engines that call the handler in this process: `baseline` and `async`; the `process` engine's
handlers run in other processes and are not timed) and commit time (a timer around each commit
call). Neither timer exists when metrics are off.

    from pyrallel_consumer.metrics import ConsumerMetrics, start_metrics_server
    metrics = ConsumerMetrics()                  # registers in prometheus_client's REGISTRY
    server = start_metrics_server(9108)          # GET http://127.0.0.1:9108/metrics
    ParallelConsumer(..., metrics=metrics).run()
    server.close()                               # or `with start_metrics_server(...):`

Metric names (namespace `pyrallel` by default), all counters since the consumer started:
`_records_received_total`, `_records_completed_total`, `_records_failed_total`,
`_records_skipped_total`, `_records_dead_lettered_total`, `_records_fenced_total`,
`_records_cancelled_total`, `_records_abandoned_total`, `_records_already_completed_total`,
`_retries_total`, `_worker_restarts_total`, `_outputs_{produced,acknowledged,refused}_total`,
`_transactions_{committed,aborted}_total`;
gauges `_in_flight`, `_backlog`, `_dead_lettering`, `_outputs_pending`, `_paused_partitions`,
`_partition_lag{topic,partition}`, `_partition_committed_offset{topic,partition}`; histograms
`_handler_seconds`, `_commit_seconds`.

Threads: a scrape runs `collect` on the scraping thread (the metrics server's, or whoever calls
prometheus_client), which reads stats(): a copy of the snapshot the control thread published.
The handler timer observes on the engine's handler threads, the commit timer on the control
thread; prometheus_client locks each observation and each read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

try:
    from prometheus_client import REGISTRY, CollectorRegistry, Histogram, start_http_server
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "pyrallel_consumer.metrics needs prometheus-client: "
        "pip install 'pyrallel-consumer[metrics]'"
    ) from exc

from pyrallel_consumer.control.client import (
    CommitFailure,
    CommitOffset,
    ConfluentClient,
    ErrorCallback,
    KafkaClient,
)
from pyrallel_consumer.control.stats import Stats
from pyrallel_consumer.engines.base import Handler, is_coroutine_handler
from pyrallel_consumer.record import Record

StatsSource = Callable[[], Stats]

# stats() counter -> (metric name without namespace, help). The one list of counters.
COUNTERS: dict[str, tuple[str, str]] = {
    "received": ("records_received", "Records received from Kafka"),
    "completed": ("records_completed", "Records completed: succeeded, skipped or dead-lettered"),
    "failed": ("records_failed", "Records that failed every attempt"),
    "skipped": ("records_skipped", "Failed records skipped (on_failure='skip')"),
    "dead_lettered": ("records_dead_lettered", "Failed records the dead-letter topic acknowledged"),
    "fenced": ("records_fenced", "Reports that arrived after their partition was revoked"),
    "cancelled": (
        "records_cancelled",
        "Records not started when their partition was revoked or the run stopped",
    ),
    "abandoned": (
        "records_abandoned",
        "Records given up without a verdict (a worker given up, or in flight when the run ended)",
    ),
    "already_completed": (
        "records_already_completed",
        "Records skipped because the commit metadata says they completed before",
    ),
    "retries": ("retries", "Handler calls beyond the first, over all records"),
    "outputs_produced": ("outputs_produced", "Handler outputs handed to the output producer"),
    "outputs_acknowledged": ("outputs_acknowledged", "Handler outputs the broker acknowledged"),
    "outputs_refused": ("outputs_refused", "Handler outputs refused (at once or by the broker)"),
    "transactions_committed": ("transactions_committed", "Transactions committed (exactly once)"),
    "transactions_aborted": (
        "transactions_aborted",
        "Transactions aborted, their records rewound and redone (exactly once)",
    ),
}
# stats()["batches"] counter (batch mode) -> (metric name without namespace, help).
BATCH_COUNTERS: dict[str, tuple[str, str]] = {
    "batches": ("batches", "Batches sent to the handler (batch mode)"),
    "records": ("batch_records", "Records in the batches sent (batch mode)"),
    "calls": ("batch_calls", "Handler calls for batches and their pieces (batch mode)"),
    "splits": ("batch_splits", "Batches bisected after failing every attempt (batch mode)"),
}
# stats() size -> (metric name without namespace, help).
GAUGES: dict[str, tuple[str, str]] = {
    "in_flight": ("in_flight", "Records submitted to the engine and not reported yet"),
    "backlog": ("backlog", "Records received and waiting for in-flight room"),
    "dead_lettering": ("dead_lettering", "Failed records waiting for the dead-letter ack"),
    "outputs_pending": ("outputs_pending", "Handler outputs waiting for the broker's answer"),
}

# Handler calls range from microseconds (zero-work) to seconds (I/O with retries).
HANDLER_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ConsumerMetrics(Collector):
    """The metrics of one ParallelConsumer at a time, registered in `registry` when built.

    Give it to `ParallelConsumer(..., metrics=...)`; a consumer given it later takes over (the
    counters then start again from zero, which Prometheus reads as a counter reset). Raises
    ValueError when `registry` already holds metrics of this `namespace` (another
    ConsumerMetrics): give each one its own namespace or registry.
    """

    def __init__(
        self, registry: CollectorRegistry | None = REGISTRY, namespace: str = "pyrallel"
    ) -> None:
        self.namespace = namespace
        self._registry = registry
        self._stats: StatsSource | None = None
        try:
            self.handler_seconds = Histogram(
                "handler_seconds",
                "Duration of one handler call (each attempt), baseline and async engines",
                namespace=namespace,
                buckets=HANDLER_BUCKETS,
                registry=registry,
            )
            self.commit_seconds = Histogram(
                "commit_seconds",
                "Duration of one offset commit call to the broker",
                namespace=namespace,
                buckets=COMMIT_BUCKETS,
                registry=registry,
            )
            if registry is not None:
                registry.register(self)
        except ValueError as exc:
            raise ValueError(
                f"metrics of namespace {namespace!r} are already registered ({exc}); one "
                "ConsumerMetrics per registry and namespace: pass namespace=... or "
                "registry=prometheus_client.CollectorRegistry()"
            ) from None

    def unregister(self) -> None:
        """Remove these metrics from their registry (a later ConsumerMetrics may take it)."""
        if self._registry is not None:
            for collector in (self, self.handler_seconds, self.commit_seconds):
                self._registry.unregister(collector)
            self._registry = None

    def attach(self, stats: StatsSource) -> None:
        """Read counters and gauges from `stats` (a ParallelConsumer's stats) from now on."""
        self._stats = stats

    def describe(self) -> Iterator[Metric]:
        return self._families(None)

    def collect(self) -> Iterator[Metric]:
        return self._families(self._stats() if self._stats is not None else None)

    def _families(self, stats: Stats | None) -> Iterator[Metric]:
        """The metric families, with no samples before a consumer is attached (`stats` None)."""
        ns = self.namespace
        flat: Mapping[str, Any] = stats if stats is not None else {}  # looked up by name
        for key, (name, doc) in COUNTERS.items():
            counter = CounterMetricFamily(f"{ns}_{name}", doc)
            if key in flat:
                counter.add_metric([], flat[key])
            yield counter
        restarts = CounterMetricFamily(
            f"{ns}_worker_restarts", "Worker processes replaced (process engine)"
        )
        engine_info = flat.get("engine_info", {})
        if stats:
            restarts.add_metric([], engine_info.get("worker_restarts", 0))
        yield restarts
        batches = flat.get("batches", {})
        for key, (name, doc) in BATCH_COUNTERS.items():
            counter = CounterMetricFamily(f"{ns}_{name}", doc)
            if key in batches:
                counter.add_metric([], batches[key])
            yield counter
        for key, (name, doc) in GAUGES.items():
            gauge = GaugeMetricFamily(f"{ns}_{name}", doc)
            if key in flat:
                gauge.add_metric([], flat[key])
            yield gauge
        paused = GaugeMetricFamily(f"{ns}_paused_partitions", "Assigned partitions paused")
        if stats:
            paused.add_metric([], len(flat["paused_partitions"]))
        yield paused
        labels = ["topic", "partition"]
        lag = GaugeMetricFamily(
            f"{ns}_partition_lag", "Records between the commit position and the end", labels=labels
        )
        committed = GaugeMetricFamily(
            f"{ns}_partition_committed_offset", "Last committed offset", labels=labels
        )
        for where, partition in (stats["partitions"] if stats else {}).items():
            values = [where.topic, str(where.partition)]
            if partition["lag"] is not None:
                lag.add_metric(values, partition["lag"])
            if partition["committed"] is not None:
                committed.add_metric(values, partition["committed"])
        yield lag
        yield committed

    # ---- the two timers (only built when metrics are on) -----------------------------------

    def timed_handler(self, handler: Handler) -> Handler:
        """`handler` with each call observed in handler_seconds (sync or async alike)."""
        observe = self.handler_seconds.observe
        clock = time.perf_counter

        if is_coroutine_handler(handler):

            async def timed_async(record: Record) -> Any:
                start = clock()
                try:
                    return await handler(record)
                finally:
                    observe(clock() - start)

            return timed_async

        def timed(record: Record) -> Any:
            start = clock()
            try:
                return handler(record)
            finally:
                observe(clock() - start)

        return timed

    def client_factory(
        self, kafka_config: Mapping[str, Any], on_error: ErrorCallback
    ) -> KafkaClient:
        """A `ClientFactory` whose clients observe each commit in commit_seconds."""
        return _TimedCommitClient(kafka_config, on_error, self.commit_seconds)


class _TimedCommitClient(ConfluentClient):
    def __init__(
        self, kafka_config: Mapping[str, Any], on_error: ErrorCallback, histogram: Histogram
    ) -> None:
        super().__init__(kafka_config, on_error)
        self._observe = histogram.observe

    def commit(self, offsets: Sequence[CommitOffset]) -> list[CommitFailure]:
        start = time.perf_counter()
        try:
            return super().commit(offsets)
        finally:
            self._observe(time.perf_counter() - start)


class MetricsServer:
    """A running metrics server (`start_metrics_server`): `port` is the port it listens on (the
    one chosen when it was asked for port 0), `close()` stops it. Also a context manager."""

    def __init__(self, server: Any, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self.port: int = server.server_address[1]

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving and release the port; waits up to `timeout` seconds for the server's
        thread to end. Closing twice is harmless."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def start_metrics_server(
    port: int, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve `registry` at http://<addr>:<port>/metrics from a daemon thread (prometheus_client's
    server) until the returned server is closed. The default address is loopback only;
    addr="0.0.0.0" lets other machines scrape; port 0 picks a free port (`MetricsServer.port`).
    Raises OSError when the port is taken."""
    server, thread = start_http_server(port, addr=addr, registry=registry)
    return MetricsServer(server, thread)
