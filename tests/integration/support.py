"""The one home of what the integration tests share: waiting on a condition, producing
(retrying while the producer's local queue is full), consuming a topic back, reading a group's
commits, checking that a lane's records ran one at a time in offset order, and consumers run
as their own process.

Every wait here is on a condition with a generous deadline, never a sleep that assumes the
machine's speed: a slow machine makes a passing test slower, not a failing one.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

WAIT_S = 60.0  # the generous deadline of a condition that should hold within seconds
FLUSH_S = 60.0  # for every delivery report of one produce call
REPO_ROOT = Path(__file__).resolve().parents[2]


def wait_for(
    condition: Callable[[], bool],
    what: str,
    *,
    timeout: float = WAIT_S,
    alive: Callable[[], bool] | None = None,
    state: Callable[[], object] | None = None,
    every_s: float = 0.02,
) -> None:
    """Poll `condition` every `every_s` seconds until it holds; AssertionError naming `what`
    (and the current `state()`) at the deadline, or as soon as `alive()` says the run ended."""
    deadline = time.monotonic() + timeout
    while not condition():
        detail = f"; state: {state()}" if state is not None else ""
        if alive is not None and not alive():
            raise AssertionError(f"the run ended before {what}{detail}")
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(every_s)


def running(process: subprocess.Popen[bytes]) -> Callable[[], bool]:
    """An `alive` for wait_for: whether `process` has not exited."""
    return lambda: process.poll() is None


# ---- consumers run as their own process ------------------------------------------------------


def repo_env() -> dict[str, str]:
    """This process's environment with the repository first on PYTHONPATH, for a script run
    as its own process to import pyrallel_consumer from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def start_worker(
    script: Path, broker: Any, topic: str, group: str, output: Path, *extra: object
) -> subprocess.Popen[bytes]:
    """Run `python script BOOTSTRAP TOPIC GROUP OUTPUT extra...`: a consumer of `topic` in
    `group` that appends each record it handled to `output` (see handled()). Its stdout and
    stderr are the test's."""
    args = [broker.bootstrap_servers, topic, group, str(output), *map(str, extra)]
    return subprocess.Popen([sys.executable, str(script), *args], env=repo_env())


@contextmanager
def reaped(process: subprocess.Popen[bytes]) -> Iterator[subprocess.Popen[bytes]]:
    """`process`, killed and waited for on the way out if it is still running (a failed
    wait must not leave a consumer in the group)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def handled(path: Path) -> list[tuple[int, int]]:
    """The (partition, offset) lines a worker appended to `path`, in order; a line cut by a
    kill is ignored; [] if the worker wrote nothing yet."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            records.append((int(parts[0]), int(parts[1])))
    return records


def wait_handled(
    process: subprocess.Popen[bytes], output: Path, count: float, timeout: float = WAIT_S
) -> None:
    """Wait until the worker `process` appended at least `count` records to `output`;
    AssertionError if it exits first or at the deadline (`timeout` seconds)."""
    wait_for(
        lambda: len(handled(output)) >= count,
        f"{count:.0f} records handled",
        timeout=timeout,
        alive=running(process),
    )


def worker_kafka_config(bootstrap: str, group: str) -> dict[str, Any]:
    """The consumer settings of the subprocess consumers the crash tests kill: from the
    beginning, and a short session so the group notices the dead member within seconds."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
    }


def group_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ---- producing -------------------------------------------------------------------------------


def send(producer: Producer, topic: str, messages: Iterable[Mapping[str, Any]]) -> list[Message]:
    """Produce each mapping as `producer.produce(topic, **kwargs)`, in order, waiting while the
    local queue is full (BufferError); then flush. Returns the delivered messages in
    production order, with the partition and offset the broker assigned; AssertionError if
    any delivery failed."""
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
            except BufferError:  # local queue full: let deliveries drain, then retry
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(FLUSH_S)
    assert not errors, f"delivery failed for {len(errors)} records: {errors[:3]}"
    assert remaining == 0 and len(delivered) == count, (
        f"only {len(delivered)} of {count} records delivered to {topic}"
    )
    return [delivered[i] for i in range(count)]


def produce_each(broker: Any, topic: str, messages: Iterable[Mapping[str, Any]]) -> list[Message]:
    """`send` through a new producer of `broker` (a conftest.BrokerInfo)."""
    return send(Producer(broker.client_config(**{"linger.ms": 5, "acks": "all"})), topic, messages)


@dataclass(frozen=True)
class ProducedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


def produce_records(
    broker: Any,
    topic: str,
    count: int,
    *,
    keys: int | None = 16,
    partition: int | None = None,
    value_size: int | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[ProducedRecord]:
    """Produce `count` records (key `key-{i % keys}`, or None when `keys` is None; value
    `value-{i}` padded to `value_size` bytes) and return them in production order."""

    def message(i: int) -> dict[str, Any]:
        value = f"value-{i}".encode()
        kwargs: dict[str, Any] = {
            "key": f"key-{i % keys}".encode() if keys else None,
            "value": value if value_size is None else value.ljust(value_size, b"."),
        }
        if partition is not None:
            kwargs["partition"] = partition
        if headers is not None:
            kwargs["headers"] = headers
        return kwargs

    producer = Producer(
        broker.client_config(**{"linger.ms": 5, "acks": "all", "batch.num.messages": 10000})
    )
    delivered = send(producer, topic, map(message, range(count)))
    return [ProducedRecord(topic, m.partition(), m.offset(), m.key(), m.value()) for m in delivered]


def end_offsets(produced: Iterable[ProducedRecord]) -> dict[int, int]:
    """Partition -> one past the highest offset produced to it."""
    ends: dict[int, int] = {}
    for record in produced:
        ends[record.partition] = max(ends.get(record.partition, 0), record.offset + 1)
    return ends


# ---- consuming and commits -------------------------------------------------------------------


def consume_all(
    consumer: Consumer, expected: int, timeout: float = WAIT_S, *, exact: bool = True
) -> list[Message]:
    """Consume until `expected` records arrived, failing on an error message. `exact`: fail
    unless exactly `expected` arrived by `timeout`; otherwise return what arrived by then plus
    whatever else comes within another second (to catch records that should not be there)."""
    records: list[Message] = []
    deadline = time.monotonic() + timeout
    while len(records) < expected and time.monotonic() < deadline:
        records.extend(_checked(consumer.consume(500, 0.5)))
    if exact:
        assert len(records) == expected, f"consumed {len(records)} of {expected} records"
    else:
        records.extend(_checked(consumer.consume(500, 1.0)))
    return records


def _checked(messages: list[Message]) -> list[Message]:
    for message in messages:
        assert message.error() is None, message.error()
    return messages


def read_topic(broker: Any, topic: str, expected: int, timeout: float = WAIT_S) -> list[Message]:
    """Every record of `topic` (at least `expected`, then whatever else arrives in 1 s), read
    by a consumer of a new group."""
    consumer = Consumer(broker.consumer_config(group_name("reader")))
    consumer.subscribe([topic])
    try:
        return consume_all(consumer, expected, timeout, exact=False)
    finally:
        consumer.close()


# The group coordinator is moving or loading (a broker just started): asking again succeeds.
_COORDINATOR_BUSY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def committed(broker: Any, group: str, topic: str, partitions: int = 1) -> dict[int, Any]:
    """The group's committed TopicPartition per partition, read by a plain consumer; asked
    again (within WAIT_S) while the group coordinator is busy."""
    consumer = Consumer(broker.consumer_config(group))
    deadline = time.monotonic() + WAIT_S
    try:
        while True:
            try:
                tps = consumer.committed(
                    [TopicPartition(topic, p) for p in range(partitions)], timeout=30
                )
                break
            except KafkaException as exc:
                if exc.args[0].code() not in _COORDINATOR_BUSY or time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
    finally:
        consumer.close()
    return {tp.partition: tp for tp in tps}


def committed_offset(broker: Any, group: str, topic: str, partition: int = 0) -> int:
    return int(committed(broker, group, topic, partition + 1)[partition].offset)


# ---- order per lane --------------------------------------------------------------------------


class Execution(NamedTuple):
    """One handler execution of one record: its lane (a key, a partition...), offset, start and
    end (time.monotonic seconds) and handler call (records of one batch share a call; None:
    the execution is a call of its own)."""

    lane: Hashable
    offset: int
    start: float
    end: float
    call: Hashable = None


def lane_order_violations(executions: Iterable[Execution], *, redone: bool = False) -> list[str]:
    """What breaks "one call at a time per lane, in offset order", in a lane's executions
    (given in the order they were traced, which keeps a batch's order). A call must start
    after the lane's previous call ended. Offsets must increase from one execution to the
    next; with `redone` (a rebalance or a crash redoes records), only each offset's last
    execution is held to offset order."""
    by_lane: dict[Hashable, list[tuple[float, int, Execution]]] = {}
    for position, execution in enumerate(executions):
        by_lane.setdefault(execution.lane, []).append((execution.start, position, execution))
    problems: list[str] = []
    for lane, runs in by_lane.items():
        runs.sort(key=lambda run: run[:2])
        ordered = [e for _, _, e in runs]
        for before, after in itertools.pairwise(ordered):
            own_call = before.call is None or after.call != before.call
            if own_call and after.start < before.end:
                problems.append(f"{lane}: offsets {before.offset} and {after.offset} overlap")
            if not redone and after.offset <= before.offset:
                problems.append(f"{lane}: offset {after.offset} ran after {before.offset}")
        if redone:
            last = {e.offset: (e.start, i) for i, e in enumerate(ordered)}
            starts = [last[offset] for offset in sorted(last)]
            if starts != sorted(starts):
                problems.append(f"{lane}: last executions out of offset order")
    return problems


def assert_lane_order(executions: Iterable[Execution], *, redone: bool = False) -> None:
    """AssertionError listing the first violations of `lane_order_violations`."""
    violations = lane_order_violations(executions, redone=redone)
    assert not violations, f"{len(violations)} ordering violations: {violations[:5]}"
