"""Which worker process runs each record (engines/lane_placement.py, and the process engine
using it with real worker processes; no Kafka).

- A lane stays with the worker that holds some of its records until every one of them was
  reported; then it may go elsewhere. A lane no worker holds goes to the least loaded worker,
  so lanes spread evenly whatever their hashes (the fixed `hash(lane) % workers` shard put
  every lane below on one worker of two).
- Unordered records are dealt round-robin, continuing from one call to the next.

`LanePlacement` is tested in both implementations (native_twins.py).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import pytest
from engine_support import collect, process_engine
from native_twins import IMPLEMENTATIONS, twin

from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import GroupReport, Outcome, Report, WorkItem

Item = WorkItem[object]


def items_of(lane: object, count: int, first_id: int) -> list[Item]:
    """`count` items of `lane`, ids from `first_id`, offsets equal to their ids."""
    return [
        WorkItem(i, lane, Record("t", 0, i, b"k", b"v"), None, 0.0)
        for i in range(first_id, first_id + count)
    ]


def ids(placed: list[Item]) -> list[int]:
    return [item.id for item in placed]


def done(*item_ids: int) -> list[Report]:
    return [Report(i, Outcome.SUCCEEDED, 1, 0.0) for i in item_ids]


def placement_of(implementation: str, workers: int) -> Any:
    return twin("lane_placement", implementation).LanePlacement(workers)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_held_lane_stays_with_its_worker_and_moves_once_all_of_it_was_reported(
    implementation: str,
) -> None:
    placement = placement_of(implementation, 2)
    a, b, c = ("t", 0, b"a"), ("t", 0, b"b"), ("t", 0, b"c")
    # a -> worker 0, then b -> worker 1 (the least loaded).
    assert [ids(w) for w in placement.place(items_of(a, 1, 1) + items_of(b, 3, 2))] == [
        [1],
        [2, 3, 4],
    ]
    # Worker 1 now holds more, but a's record 1 is still held by worker 0: a's next go there,
    # and the new lane c to worker 0 too (1 against 3).
    assert [ids(w) for w in placement.place(items_of(a, 1, 5) + items_of(c, 4, 6))] == [
        [5, 6, 7, 8, 9],
        [],
    ]
    # Every record of a was reported (5 twice: the duplicate is ignored), worker 0 still holds
    # c's four against worker 1's three: a goes to worker 1 now.
    placement.reported(done(1, 5, 5))
    assert [ids(w) for w in placement.place(items_of(a, 1, 10))] == [[], [10]]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_a_group_report_releases_each_of_its_records(implementation: str) -> None:
    placement = placement_of(implementation, 2)
    a, b = ("t", 0, b"a"), ("t", 0, b"b")
    placement.place(items_of(a, 3, 1) + items_of(b, 1, 4))  # a -> worker 0, b -> worker 1
    placement.reported([GroupReport([1, 2, 3], Outcome.SUCCEEDED, 1, 0.0)])
    # Worker 0 holds nothing now, worker 1 one record of b: a new lane d goes to worker 0;
    # then a, released, to worker 1 (two against one).
    d = ("t", 0, b"d")
    assert [ids(w) for w in placement.place(items_of(d, 2, 5) + items_of(a, 1, 7))] == [
        [5, 6],
        [7],
    ]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_unordered_records_are_dealt_round_robin_across_calls(implementation: str) -> None:
    placement = placement_of(implementation, 3)
    assert [ids(w) for w in placement.place(items_of(None, 4, 1))] == [[1, 4], [2], [3]]
    assert [ids(w) for w in placement.place(items_of(None, 2, 5))] == [[], [5], [6]]
    placement.reported(done(1, 2, 3))  # nothing to release: they hold no lane


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_no_workers_is_refused(implementation: str) -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        placement_of(implementation, 0)


def lanes_with_even_hashes(count: int) -> list[tuple[str, int, bytes]]:
    """`count` key lanes of partition ("t", 0) whose hashes in this process are even: the
    fixed shard `hash(lane) % 2` put them all on worker 0."""
    found: list[tuple[str, int, bytes]] = []
    key = 0
    while len(found) < count:
        lane = ("t", 0, b"%d" % key)
        if hash(lane) % 2 == 0:
            found.append(lane)
        key += 1
    return found


def note_worker(path: Path, record: Record) -> None:
    """Handler: append "<worker pid> <lane key> <offset>" to `path`."""
    with path.open("a") as out:
        out.write(f"{os.getpid()} {record.key} {record.offset}\n")


def test_the_process_engine_spreads_lanes_over_its_workers(
    engines: list[Engine], tmp_path: Path
) -> None:
    """Four lanes of five records each, submitted at once to two workers: each worker runs
    two whole lanes, each lane in offset order."""
    path = tmp_path / "calls"
    engine = process_engine(functools.partial(note_worker, path), engines, workers=2)
    engine.start()
    items = []
    for n, lane in enumerate(lanes_with_even_hashes(4)):
        for i in range(5):
            offset = 5 * n + i
            record = Record("t", 0, offset, lane[2], b"v")
            items.append(WorkItem(offset + 1, lane, record, None, 0.0))
    engine.submit(items)
    reports = collect(engine, len(items))
    assert {r.outcome for r in reports.values()} == {Outcome.SUCCEEDED}
    by_worker: dict[str, dict[str, list[int]]] = {}
    for line in path.read_text().splitlines():
        pid, key, offset = line.split()
        by_worker.setdefault(pid, {}).setdefault(key, []).append(int(offset))
    assert sorted(len(lanes) for lanes in by_worker.values()) == [2, 2]
    for lanes in by_worker.values():
        for offsets in lanes.values():
            assert offsets == sorted(offsets) and len(offsets) == 5
