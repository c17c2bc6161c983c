"""The container engine: connecting to it through the docker SDK, and what it offers.

The SDK reads DOCKER_HOST (and the TLS variables) like the docker CLI; Podman's
Docker-compatible socket works the same way (DOCKER_HOST=unix:///run/podman/podman.sock, or
$XDG_RUNTIME_DIR/podman/podman.sock rootless).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


class ContainerError(RuntimeError):
    """Anything the container driver cannot do; the message names the problem and the fix."""


try:  # the SDK's own base error, so callers can catch it without importing docker themselves
    from docker.errors import DockerException as DockerError
except ImportError:  # connect() says how to install it
    DockerError = ContainerError


@dataclass(frozen=True)
class EngineInfo:
    name: str  # "Docker Engine 20.10.24", "Podman Engine 4.3.1"
    cpus: int  # CPUs the engine may give containers: 0..cpus-1
    memory_bytes: int
    is_podman: bool


def connect(timeout_s: float = 300.0) -> Any:
    """A docker.DockerClient for the engine DOCKER_HOST names (or the default socket)."""
    try:
        import docker
    except ImportError:
        raise ContainerError(
            "the docker SDK is not installed: `make install` (the bench's dependency group) "
            "or pip install docker"
        ) from None
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except docker.errors.DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "the default socket (/var/run/docker.sock)")
        raise ContainerError(
            f"no container engine answers at {where} ({exc}); start one (dockerd, or "
            "`podman system service` and DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock)"
        ) from None
    return client


def engine_info(client: Any) -> EngineInfo:
    version = client.version()
    components = version.get("Components") or [{"Name": "Engine"}]
    name = str(components[0].get("Name", "Engine"))
    is_podman = "podman" in name.lower()
    if name == "Engine":
        name = "Docker Engine"
    info = client.info()
    return EngineInfo(
        name=f"{name} {version.get('Version', '?')}",
        cpus=int(info.get("NCPU") or 1),
        memory_bytes=int(info.get("MemTotal") or 0),
        is_podman=is_podman,
    )
