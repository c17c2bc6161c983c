"""Helpers shared by the fault-injection tests (tests/integration/test_faults_*.py).

Every wait here is on an event or a condition with a generous deadline, never a sleep that
assumes the machine's speed: a slow machine makes a passing test slower, not a failing one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from pyrallel_consumer import Completion, ParallelConsumer, Record

WAIT_S = 60.0  # the generous deadline of a condition that should hold within seconds
TRACE_ENV = "PYRALLEL_FAULTS_DIR"  # where handlers in worker processes write their traces
REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT_S,
    alive: Callable[[], bool] | None = None,
    state: Callable[[], object] | None = None,
) -> None:
    """Poll `condition` every 20 ms until it holds; AssertionError naming `what` (and the
    current `state()`) at the deadline, or as soon as `alive()` says the run ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        detail = f"; state: {state()}" if state is not None else ""
        if alive is not None and not alive():
            raise AssertionError(f"the run ended before {what}{detail}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(0.02)


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


def group_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def committed(broker: Any, group: str, topic: str, partitions: int = 1) -> dict[int, Any]:
    """The group's committed TopicPartition per partition, read by a plain consumer."""
    consumer = Consumer(broker.consumer_config(group))
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=30)
    finally:
        consumer.close()
    return {tp.partition: tp for tp in tps}


def committed_offset(broker: Any, group: str, topic: str, partition: int = 0) -> int:
    return int(committed(broker, group, topic, partition + 1)[partition].offset)


def read_topic(broker: Any, topic: str, expected: int, timeout: float = WAIT_S) -> list[Message]:
    """Every record of `topic` (at least `expected`, then whatever else arrives in 1 s)."""
    consumer = Consumer(broker.consumer_config(group_name("reader")))
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages.extend(m for m in consumer.consume(500, 0.5) if m.error() is None)
        messages.extend(m for m in consumer.consume(500, 1.0) if m.error() is None)
    finally:
        consumer.close()
    return messages


def produce_each(broker: Any, topic: str, messages: Iterable[dict[str, Any]]) -> list[Message]:
    """Produce each dict as `producer.produce(topic, **kwargs)`, in order; returns the
    delivered messages in production order (with the partition and offset assigned)."""
    producer = Producer(broker.client_config(**{"linger.ms": 5, "acks": "all"}))
    delivered: dict[int, Message] = {}
    errors: list[KafkaError] = []

    def report(index: int) -> Callable[[KafkaError | None, Message], None]:
        def on_delivery(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                errors.append(err)
            else:
                delivered[index] = msg

        return on_delivery

    count = 0
    for count, kwargs in enumerate(messages, start=1):
        while True:
            try:
                producer.produce(topic, on_delivery=report(count - 1), **kwargs)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0 and not errors, f"delivery failed: {errors[:3]}"
    return [delivered[i] for i in range(count)]


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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
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
