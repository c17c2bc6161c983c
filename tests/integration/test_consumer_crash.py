"""Crash: SIGKILL the consumer process mid-run and restart it with the same group.

Nothing is missing, and records that completed before the last commit (below the committed
position, or carried in the commit metadata) are not redone by the second run. The first run
has one record stuck, so it cannot finish before the kill however fast the machine is, and
the kill waits for a commit whose metadata lists completed records above it: a restart that
ignored the metadata would redo them, every time.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import (
    committed,
    end_offsets,
    handled,
    reaped,
    running,
    start_worker,
    wait_for,
    wait_handled,
)

from pyrallel_consumer.control import offset_metadata

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECORDS = 20_000
PARTITIONS = 4
KEYS = 100
WORKER = Path(__file__).with_name("crash_worker.py")
WAIT_S = 180.0
STUCK = (0, 100)  # (partition, offset) whose handler call never returns in the first run


def test_sigkill_then_restart_loses_nothing_and_redoes_little(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    topic = new_topic(kafka_broker, PARTITIONS)
    produced = produce(kafka_broker, topic, RECORDS, keys=KEYS)
    want = {(r.partition, r.offset) for r in produced}
    group = f"crash-{uuid.uuid4().hex[:8]}"
    first_file, second_file = tmp_path / "first.txt", tmp_path / "second.txt"

    def metadata_committed() -> bool:
        stuck = committed(kafka_broker, group, topic, PARTITIONS)[STUCK[0]]
        return stuck.offset == STUCK[1] and bool(stuck.metadata)

    with reaped(start_worker(WORKER, kafka_broker, topic, group, first_file, *STUCK)) as first:
        wait_handled(first, first_file, RECORDS * 0.3, WAIT_S)
        wait_for(
            metadata_committed,
            f"a commit of partition {STUCK[0]} at the stuck offset with metadata",
            every_s=0.2,
            timeout=WAIT_S,
            alive=running(first),
        )
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    assert first.returncode == -signal.SIGKILL

    before_restart = committed(kafka_broker, group, topic, PARTITIONS)
    already_done: set[tuple[int, int]] = set()
    carried = 0
    for partition, tp in before_restart.items():
        if tp.offset < 0:
            continue  # nothing committed for this partition yet
        already_done.update((partition, o) for o in range(tp.offset))
        in_metadata = offset_metadata.decode(tp.offset, tp.metadata)
        carried += len(in_metadata)
        already_done.update((partition, o) for o in in_metadata)
    first_run = handled(first_file)
    assert already_done, "the first run committed nothing before the kill"
    assert carried, "the commit metadata was empty at the kill"
    # Every record committed as done was really handled by the first run.
    assert already_done <= set(first_run)
    assert STUCK not in set(first_run)

    with reaped(start_worker(WORKER, kafka_broker, topic, group, second_file)) as second:
        wait_for(
            lambda: want <= set(first_run) | set(handled(second_file)),
            "every record handled",
            timeout=WAIT_S,
            alive=running(second),
        )
        second.send_signal(signal.SIGTERM)  # clean stop: drain, commit, close
        assert second.wait(60) == 0

    second_run = handled(second_file)
    missing = want - set(first_run) - set(second_run)
    assert not missing, f"{len(missing)} records never handled, e.g. {sorted(missing)[:5]}"
    redone_committed = already_done & set(second_run)
    assert not redone_committed, (
        f"{len(redone_committed)} records completed before the last commit were redone "
        f"(e.g. {sorted(redone_committed)[:5]}); {carried} of them came from commit metadata"
    )
    assert not (want - already_done) - set(first_run) - set(second_run)
    final = committed(kafka_broker, group, topic, PARTITIONS)
    assert {p: tp.offset for p, tp in final.items()} == end_offsets(produced)
