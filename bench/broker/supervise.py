"""Supervision of a broker process: spawn, readiness, stop, and no orphans left behind.

Kind-neutral: the Kafka and tansu launchers (kafka.py, tansu.py) build a command line and call
:func:`spawn`; :func:`bench.broker.start_broker` then waits with :func:`wait_until_ready`.
"""

from __future__ import annotations

import atexit
import ctypes
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

HOST = "127.0.0.1"
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40


class BrokerError(RuntimeError):
    """The broker could not be started; the message says why and what to do instead."""


@dataclass(eq=False)  # identity semantics: handles live in a set of running brokers
class BrokerHandle:
    """A running broker. Stop it with :meth:`stop` or by leaving the ``with`` block.

    Owned by the thread that started it; :meth:`stop` is idempotent and safe from an atexit hook.
    """

    kind: str
    bootstrap_servers: str
    version: str
    log_path: Path
    process: subprocess.Popen[bytes]
    # Removed on stop: the temporary work directory (None when the caller gave --data-dir).
    cleanup_dir: Path | None = None
    # Runs after the process has exited (publishes the class-data archive, see java.cds_flags).
    on_exit: Callable[[int | None], None] | None = field(default=None, repr=False)
    # The SASL_PLAINTEXT listener of a Kafka broker started with one (kafka.SaslListener).
    sasl_bootstrap_servers: str | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.bootstrap_servers.rsplit(":", 1)[1])

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL after ``timeout``) and clean up."""
        if self._stopped:
            return
        self._stopped = True
        terminate(self.process, timeout)
        if self.on_exit is not None:
            self.on_exit(self.process.returncode)
        LIVE_HANDLES.discard(self)
        if self.cleanup_dir is not None:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> BrokerHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


# Brokers started by this interpreter, stopped at exit so that a forgotten handle or an
# exception between start and `with` never leaves an orphan java/tansu behind.
LIVE_HANDLES: set[BrokerHandle] = set()


@atexit.register
def _stop_live_handles() -> None:
    for handle in list(LIVE_HANDLES):
        handle.stop(timeout=10.0)


def free_port(exclude: set[int] | None = None) -> int:
    """A loopback TCP port that is free now (the OS picks it; tiny race until it is bound)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if not exclude or port not in exclude:
            return port
    raise BrokerError("could not find a free loopback port")


def check_port_free(port: int) -> None:
    """BrokerError naming the remedies when `port` is out of range or already bound."""
    if not 0 < port < 65536:
        raise BrokerError(f"port {port} is out of range 1-65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            raise BrokerError(
                f"port {port} on {HOST} is already in use ({exc.strerror}): pick another "
                "--port, or omit --port to use a free one, or pass --bootstrap-servers to use "
                "the broker that is already listening there."
            ) from exc


def _parent_death_hook() -> Callable[[], None] | None:
    """A preexec_fn that asks Linux to SIGTERM the child when the launcher dies.

    atexit cannot run when the launcher is SIGKILLed; this is what prevents an orphan broker
    then. libc is resolved here, in the parent: dlopen after fork() in a process with client
    threads could deadlock. Caveat: the signal fires when the launching *thread* exits, so start
    brokers from a thread that lives as long as the broker (the main thread, as the fixtures and
    the bench do)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


def spawn(
    cmd: Sequence[str], log_path: Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start `cmd` with stdout and stderr appended to `log_path`; it dies with the launcher."""
    with log_path.open("ab") as log:
        # A new session: Ctrl-C in the terminal reaches only the launcher, which then shuts the
        # broker down in order instead of racing it.
        return subprocess.Popen(
            list(cmd),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=cwd,
            env=env,
            start_new_session=True,
            preexec_fn=_parent_death_hook(),
        )


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL when the process has not exited within `timeout` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def wait_until_ready(handle: BrokerHandle, timeout: float) -> None:
    """Block until the broker answers a metadata request that lists itself; BrokerError (with
    the log's tail) when it exits first or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    # A TCP probe first: librdkafka would log a "connection refused" line per attempt.
    while not _port_accepts(HOST, handle.port):
        _check_alive(handle)
        if time.monotonic() > deadline:
            _raise_not_ready(handle, timeout)
        time.sleep(0.05)
    from confluent_kafka.admin import AdminClient  # imported late: the CLI help needs no client

    # error_cb swallows the transient errors of a broker that is still starting.
    admin_config: dict[str, Any] = {
        "bootstrap.servers": handle.bootstrap_servers,
        "error_cb": lambda _err: None,
    }
    admin = AdminClient(admin_config)
    while True:
        _check_alive(handle)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _raise_not_ready(handle, timeout)
        try:
            metadata = admin.list_topics(timeout=min(5.0, max(remaining, 0.1)))
            if metadata.brokers:
                return
        except Exception:  # KafkaException while the broker is still starting up
            pass
        time.sleep(0.1)


def _port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _check_alive(handle: BrokerHandle) -> None:
    code = handle.process.poll()
    if code is not None:
        raise BrokerError(
            f"the {handle.kind} broker exited with code {code} during start-up "
            f"(a port clash or a bad configuration); log: {handle.log_path}\n{handle.log_tail()}"
        )


def _raise_not_ready(handle: BrokerHandle, timeout: float) -> None:
    raise BrokerError(
        f"the {handle.kind} broker did not answer on {handle.bootstrap_servers} within "
        f"{timeout:.0f} s (a slow or overloaded machine?); log: {handle.log_path}\n"
        f"{handle.log_tail()}\nRetry, or use `--kind tansu`, or pass --bootstrap-servers."
    )


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])
