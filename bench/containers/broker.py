"""The broker container: started from pyrallel/bench-broker, waited on until healthy.

Two network layouts:
- "host" (default): the broker shares the host's network and listens on 127.0.0.1 only, on
  two free ports picked here (so it never collides with another broker on this machine); the
  modes reach it at 127.0.0.1:<port>. Needs no bridge network, and adds no NAT to the numbers.
- a network name: a user-defined network (created if missing, removed afterwards if created
  here); the broker is "broker" on it and the modes reach it at broker:9092, as in compose.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.containers.engine import ContainerError

HOST_NETWORK = "host"
BROKER_ALIAS = "broker"
LOOPBACK = "127.0.0.1"
_SECOND_NS = 1_000_000_000
# The image's own probe (Dockerfile.broker's HEALTHCHECK), set on the container too: the address
# differs on the host network, and an image built in Podman's OCI format has no HEALTHCHECK.
PROBE = (
    "KAFKA_HEAP_OPTS='-Xms16m -Xmx64m' /opt/kafka/bin/kafka-configs.sh --bootstrap-server {address}"
    " --describe --entity-type brokers --entity-name 1 > /dev/null 2>&1"
)


@dataclass(frozen=True)
class BrokerLayout:
    """Where the broker listens and how the modes and the healthcheck reach it."""

    environment: dict[str, str]  # KAFKA_* overrides of the image's settings
    bootstrap_servers: str  # for the modes
    probe_address: str  # for the healthcheck, inside the broker's container


def free_loopback_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (held open together while picked)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def broker_layout(network: str, heap_opts: str, ports: list[int] | None = None) -> BrokerLayout:
    """The broker's settings for `network`; `ports` (client, controller) for the host network."""
    environment = {"KAFKA_HEAP_OPTS": heap_opts}
    if network != HOST_NETWORK:
        # The image's defaults: PLAINTEXT advertised as broker:9092, EXTERNAL as localhost:29092.
        return BrokerLayout(environment, f"{BROKER_ALIAS}:9092", "localhost:29092")
    client, controller = ports or free_loopback_ports(2)
    environment.update(
        {
            "KAFKA_LISTENERS": f"PLAINTEXT://{LOOPBACK}:{client},CONTROLLER://{LOOPBACK}:{controller}",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://{LOOPBACK}:{client}",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@{LOOPBACK}:{controller}",
        }
    )
    address = f"{LOOPBACK}:{client}"
    return BrokerLayout(environment, address, address)


def healthcheck(probe_address: str, interval_s: float = 5.0) -> dict[str, Any]:
    """The container healthcheck (docker SDK shape, nanoseconds)."""
    return {
        "test": ["CMD-SHELL", PROBE.format(address=probe_address)],
        "interval": int(interval_s * _SECOND_NS),
        "timeout": 30 * _SECOND_NS,
        "retries": 3,
        "start_period": 120 * _SECOND_NS,
    }


def container_health(container: Any) -> tuple[str, str]:
    """(status, health) after a reload: ("running", "starting"|"healthy"|"unhealthy"), ..."""
    container.reload()
    state = container.attrs.get("State") or {}
    health = (state.get("Health") or {}).get("Status", "none")
    return str(state.get("Status", "unknown")), str(health)


def _last_probe_output(container: Any) -> str:
    probes = ((container.attrs.get("State") or {}).get("Health") or {}).get("Log") or []
    return str(probes[-1].get("Output", "")).strip() if probes else ""


def wait_healthy(
    container: Any,
    timeout_s: float,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until the broker container is healthy; returns the seconds waited. ContainerError
    with its last log lines when it exits, turns unhealthy or is not healthy in `timeout_s`."""
    started = clock()
    last = ""
    while True:
        status, health = container_health(container)
        if health != last:
            log(f"broker: {status}, {health} after {clock() - started:.0f} s")
            last = health
        if health == "healthy":
            return clock() - started
        problem = None
        if status not in ("created", "running"):
            problem = f"the broker container stopped ({status})"
        elif health == "unhealthy":
            problem = f"the broker turned unhealthy (probe: {_last_probe_output(container)!r})"
        elif clock() - started > timeout_s:
            problem = f"the broker was not healthy within {timeout_s:g} s"
        if problem:
            tail = container.logs(tail=30).decode(errors="replace").rstrip()
            raise ContainerError(f"{problem}; its last log lines:\n{tail}")
        sleep(1.0)
