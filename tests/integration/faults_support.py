"""Helpers of the fault-injection tests (tests/integration/test_faults_*.py): a run on its own
thread, completions kept, traces written by handlers in any process, scripts run as their own
process. What every integration test shares (waiting, producing, reading back, commits, order
per lane) is in support.py, and re-exported here for the fault tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

# The helpers every integration test shares, for the fault tests that import them from here.
from support import WAIT_S as WAIT_S
from support import committed as committed
from support import committed_offset as committed_offset
from support import group_name as group_name
from support import produce_each as produce_each
from support import read_topic as read_topic
from support import repo_env
from support import wait_for as wait_for

from pyrallel_consumer import Completion, ParallelConsumer, Record

TRACE_ENV = "PYRALLEL_FAULTS_DIR"  # where handlers in worker processes write their traces


class RunThread:
    """`consumer.run(**kwargs)` on a daemon thread; keeps the result or the exception."""

    def __init__(self, consumer: ParallelConsumer, **kwargs: Any) -> None:
        self.consumer = consumer
        self.result: int | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, kwargs=kwargs, daemon=True)
        self._thread.start()

    def _run(self, **kwargs: Any) -> None:
        try:
            self.result = self.consumer.run(**kwargs)
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop_and_join(self, timeout: float = WAIT_S) -> None:
        """Ask the consumer to stop and wait for run() to return; fail if it does not."""
        self.consumer.stop()
        self.join(timeout)

    def join(self, timeout: float = WAIT_S) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"run() did not return within {timeout:.0f} s"


class Completions:
    """An `on_complete` callback that keeps every Completion; thread-safe to read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: list[Completion] = []

    def __call__(self, completion: Completion) -> None:
        with self._lock:
            self.items.append(completion)

    def snapshot(self) -> list[Completion]:
        with self._lock:
            return list(self.items)

    def offsets(self, partition: int = 0) -> set[int]:
        return {c.offset for c in self.snapshot() if c.partition == partition}

    def __len__(self) -> int:
        with self._lock:
            return len(self.items)


# ---- traces written by handlers, in this process or in worker processes ----------------------


def trace_dir() -> Path:
    return Path(os.environ[TRACE_ENV])


def trace(name: str, line: str) -> None:
    """Append one line to `name`-<pid>.txt in the trace directory (O_APPEND: whole lines)."""
    path = trace_dir() / f"{name}-{os.getpid()}.txt"
    with open(path, "a") as out:
        out.write(line + "\n")


def read_trace(directory: Path, name: str) -> list[str]:
    lines: list[str] = []
    for path in sorted(directory.glob(f"{name}-*.txt")):
        lines.extend(line for line in path.read_text().splitlines() if line)
    return lines


def released(name: str = "release") -> bool:
    """Whether the test created the file `name` in the trace directory (a cross-process
    event: handlers in worker processes poll it)."""
    return (trace_dir() / name).exists()


def block_until_released(name: str = "release", limit_s: float = 120.0) -> None:
    """Block a handler until the test releases it (bounded, so a failed test cannot hang)."""
    deadline = time.monotonic() + limit_s
    while not released(name) and time.monotonic() < deadline:
        time.sleep(0.01)


def release(directory: Path, name: str = "release") -> None:
    (directory / name).touch()


def record_fields(record: Record) -> tuple[Any, ...]:
    return (
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.headers,
        record.timestamp,
    )


# ---- scripts run as their own process ----------------------------------------------------------


def script_env(directory: Path) -> dict[str, str]:
    env = repo_env()
    env[TRACE_ENV] = str(directory)
    return env


def start_script(
    script: Path, args: list[str], directory: Path, *, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """Run `python script args...` with the repo importable; stdout and stderr go to files in
    `directory` (stdout.txt, stderr.txt) so a chatty child cannot block on a full pipe."""
    stdout = open(directory / "stdout.txt", "wb")  # noqa: SIM115  # closed by the child's exit
    stderr = open(directory / "stderr.txt", "wb")  # noqa: SIM115
    try:
        return subprocess.Popen(
            [sys.executable, str(script), *args],
            env=script_env(directory),
            stdout=stdout,
            stderr=stderr,
            start_new_session=new_session,
        )
    finally:
        stdout.close()
        stderr.close()
