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
# The image's own probe (Dockerfile.broker's HEALTHCHECK), run by the driver itself: the address
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


def probe_command(probe_address: str) -> list[str]:
    """The readiness probe, run inside the broker's container: exit status 0 once it answers."""
    return ["/bin/sh", "-c", PROBE.format(address=probe_address)]


# The driver probes the broker itself (wait_ready) and turns the image's HEALTHCHECK off on its
# container: no probe JVM competes with the broker while a benchmark runs, and it works where the
# engine runs no healthchecks (Podman without systemd drives them with systemd timers).
NO_HEALTHCHECK: dict[str, Any] = {"test": ["NONE"]}


def wait_ready(
    container: Any,
    probe: list[str],
    timeout_s: float,
    log: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Block until `probe` succeeds inside the broker's container; returns the seconds waited.
    ContainerError with its last log lines when the container stops or the probe has not
    succeeded within `timeout_s`."""
    started = clock()
    output = ""
    while True:
        container.reload()
        status = str((container.attrs.get("State") or {}).get("Status", "unknown"))
        if status not in ("created", "running"):
            problem = f"the broker container stopped ({status})"
        else:
            exit_code, answer = container.exec_run(probe)
            if exit_code == 0:
                return clock() - started
            output = (answer or b"").decode(errors="replace").strip()[-300:]
            if clock() - started <= timeout_s:
                sleep(2.0)
                continue
            problem = f"the broker did not answer within {timeout_s:g} s (probe: {output!r})"
        tail = container.logs(tail=30).decode(errors="replace").rstrip()
        raise ContainerError(f"{problem}; its last log lines:\n{tail}")
