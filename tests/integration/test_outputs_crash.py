"""Consume, transform, produce across a crash: SIGKILL the consumer mid-run, restart it with
the same group, and every record's output is in the output topic (at least once: the outputs
of records in flight at the kill may be written twice, and are counted).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from outputs_support import duplicates, order_violations, read_all, sources
from support import (
    committed,
    end_offsets,
    group_name,
    reaped,
    running,
    start_worker,
    wait_for,
    wait_handled,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 4
KEYS = 100
WORKER = Path(__file__).with_name("outputs_worker.py")
WAIT_S = 180.0


def test_sigkill_then_restart_writes_every_output(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    out_topic = new_topic(kafka_broker, PARTITIONS, prefix="outputs")
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    group = group_name("outputs-crash")
    first_file, second_file = tmp_path / "first.txt", tmp_path / "second.txt"

    def some_committed() -> bool:
        return any(
            tp.offset > 0 for tp in committed(kafka_broker, group, topic, PARTITIONS).values()
        )

    with reaped(start_worker(WORKER, kafka_broker, topic, group, first_file, out_topic)) as first:
        wait_handled(first, first_file, RECORDS * 0.3, WAIT_S)
        wait_for(some_committed, "a commit", every_s=0.2, timeout=WAIT_S, alive=running(first))
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    with reaped(start_worker(WORKER, kafka_broker, topic, group, second_file, out_topic)) as second:
        assert second.wait(WAIT_S) == 0  # until_end: done once every record completed

    read = sources(read_all(kafka_broker, out_topic, PARTITIONS))
    missing = {(r.partition, r.offset) for r in produced} - {(p, o) for p, o, *_ in read}
    assert not missing, f"{len(missing)} outputs missing, e.g. {sorted(missing)[:5]}"
    twice = duplicates(read)
    print(f"outputs written twice after the kill: {twice} of {RECORDS}")
    assert order_violations(read) == []
    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)
