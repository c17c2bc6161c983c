"""Reaching the cluster: fail fast when no bootstrap address answers, say what the cluster is,
and keep librdkafka's own log lines out of the bench's output.

librdkafka retries a refused connection forever, logging each attempt; the bench first tries a
plain TCP connection to every bootstrap address (refused or unresolvable is known within a
second) and only then lets the admin client talk Kafka.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

# librdkafka's log lines go to this logger; the bench sets it to CRITICAL (silent) unless
# --log-level DEBUG (bench/run_parallel_benchmark.py configure_logging).
LIBRDKAFKA_LOGGER = "bench.librdkafka"
PROBE_TIMEOUT_S = 1.0
# Once a port accepts TCP, how long the admin client may take to answer metadata.
METADATA_TIMEOUT_S = 30.0


class BenchSetupError(RuntimeError):
    """The broker or topic could not be prepared; the message names the address or topic."""


def client_config(bootstrap_servers: str, **settings: Any) -> dict[str, Any]:
    """Settings of the bench's own admin and producer clients: librdkafka logs through Python
    logging (LIBRDKAFKA_LOGGER) instead of printing to stderr."""
    return {
        "bootstrap.servers": bootstrap_servers,
        "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
        **settings,
    }


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    out = []
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        out.append((host.strip("[]"), int(port)))
    return out


def _probe(host: str, port: int, timeout_s: float) -> str | None:
    """None when the address accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def check_reachable(bootstrap_servers: str, timeout_s: float = METADATA_TIMEOUT_S) -> None:
    """BenchSetupError naming the addresses when none accepts a connection (within about a
    second per address) or the cluster does not answer metadata within `timeout_s`."""
    failures = [
        (f"{host}:{port}", _probe(host, port, PROBE_TIMEOUT_S))
        for host, port in _addresses(bootstrap_servers)
    ]
    if all(reason is not None for _, reason in failures):
        reasons = "; ".join(f"{address}: {reason}" for address, reason in failures)
        raise BenchSetupError(
            f"cannot reach a Kafka broker at {bootstrap_servers} ({reasons}); start one or "
            "fix --bootstrap-servers (without it the bench starts an embedded broker)"
        )
    admin = AdminClient(client_config(bootstrap_servers))
    try:
        admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BenchSetupError(
            f"cannot reach a Kafka broker at {bootstrap_servers} within {timeout_s:g} s "
            f"({exc.args[0] if exc.args else exc})"
        ) from None


def describe_cluster(bootstrap_servers: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """What the cluster says about itself: cluster id, controller id, broker count and ids.

    The installed confluent-kafka has no describe_features, so feature levels and the metadata
    version are not available; an error is recorded instead of failing the run.
    """
    admin = AdminClient(client_config(bootstrap_servers))
    try:
        cluster = admin.describe_cluster(request_timeout=timeout_s).result(timeout=timeout_s)
    except Exception as exc:  # identity is informative only: a broker may not support it
        return {"describe_error": f"{type(exc).__name__}: {exc}"}
    controller = getattr(cluster, "controller", None)
    nodes = list(getattr(cluster, "nodes", None) or [])
    return {
        "cluster_id": getattr(cluster, "cluster_id", None),
        "controller_id": getattr(controller, "id", None),
        "broker_count": len(nodes),
        "broker_ids": sorted(int(node.id) for node in nodes),
    }
