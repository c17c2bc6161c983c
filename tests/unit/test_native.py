"""The native record-tracking structures: in use when built, forced off by PYRALLEL_NATIVE=0,
and indistinguishable from their pure-Python twins on random operation sequences."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from native_twins import backlog_twin, needs_native, partition_state_class

import pyrallel_consumer.control.partition_state as partition_state_module
from pyrallel_consumer import native
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import WorkItem

ROOT = Path(__file__).resolve().parents[2]

_PRINT_IN_USE = (
    "import pyrallel_consumer.backlog as b, pyrallel_consumer.control.partition_state as p; "
    "import pyrallel_consumer.record as r, pyrallel_consumer.work as w; "
    "import pyrallel_consumer.control.intake as i, pyrallel_consumer.control.completing as c; "
    "import pyrallel_consumer.control.in_flight as f; "
    "import pyrallel_consumer.engines.batch_assembly as a; "
    "print(type(b.Backlog()).__module__, p.PartitionState.__module__, r.Record.__module__, "
    "w.WorkItem.__module__, w.Report.__module__, w.GroupReport.__module__, "
    "i.intake.__module__, c.unrevoked.__module__, c.complete_offsets.__module__, "
    "c.completions.__module__, "
    "f.dispatch.__module__, f.settle.__module__, a.Batch.__module__, a.BatchAssembler.__module__, "
    "__import__('pyrallel_consumer.native').native.implementation())"
)


def _in_use(env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(native.ENV_VAR, None)
    if env_value is not None:
        env[native.ENV_VAR] = env_value
    return subprocess.run(
        [sys.executable, "-c", _PRINT_IN_USE],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


@needs_native
@pytest.mark.parametrize("env_value", [None, "auto", "1", "native"])
def test_the_native_structures_are_in_use_when_built(env_value: str | None) -> None:
    proc = _in_use(env_value)
    assert proc.stdout.split() == [*["pyrallel_consumer._record_path"] * 14, "native"], proc.stderr


@pytest.mark.parametrize("env_value", ["0", "pure", " PURE "])
def test_the_environment_forces_the_pure_twins(env_value: str) -> None:
    proc = _in_use(env_value)
    assert proc.stdout.split() == [
        "pyrallel_consumer.backlog",
        "pyrallel_consumer.control.partition_state",
        "pyrallel_consumer.record",
        *["pyrallel_consumer.work"] * 3,
        "pyrallel_consumer.control.intake",
        *["pyrallel_consumer.control.completing"] * 3,
        *["pyrallel_consumer.control.in_flight"] * 2,
        *["pyrallel_consumer.engines.batch_assembly"] * 2,
        "pure",
    ], proc.stderr


def test_the_environment_rejects_unknown_values() -> None:
    proc = _in_use("fast")
    assert proc.returncode != 0
    assert "PYRALLEL_NATIVE must be one of auto, native (1) or pure (0), got 'fast'" in proc.stderr


def test_without_the_extension_auto_falls_back_and_native_says_how_to_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, native.NATIVE_MODULE, None)  # import now fails
    monkeypatch.setattr(native, "IN_USE", {})
    monkeypatch.setenv(native.ENV_VAR, "auto")
    assert native.native_twin("backlog") is None
    assert native.IN_USE == {"backlog": "pure"}
    monkeypatch.setenv(native.ENV_VAR, "native")
    with pytest.raises(ImportError, match=r"make build-ext.*PYRALLEL_NATIVE=0"):
        native.native_twin("backlog")


def test_a_build_from_older_sources_falls_back_for_what_it_lacks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A module built before a structure had its twin (a stale in-place build) is refused for
    that structure, as if it were not built, and still used for the others."""
    stale = types.ModuleType(native.NATIVE_MODULE)
    stale.STRUCTURES = frozenset({"backlog"})  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, native.NATIVE_MODULE, stale)
    monkeypatch.setattr(native, "IN_USE", {})
    monkeypatch.setenv(native.ENV_VAR, "auto")
    assert native.native_twin("batch_assembly") is None
    assert native.native_twin("backlog") is stale
    assert native.IN_USE == {"batch_assembly": "pure", "backlog": "native"}
    monkeypatch.setenv(native.ENV_VAR, "native")
    with pytest.raises(ImportError, match=r"built from older sources: run `make build-ext`"):
        native.native_twin("batch_assembly")


@needs_native
def test_the_build_has_a_twin_of_every_structure() -> None:
    built = native.import_native("record").STRUCTURES
    assert set(native.PURE_MODULES) == built


@needs_native
def test_the_native_partition_state_shares_the_twins_constants() -> None:
    module = native.import_native("partition_state")
    for name in ("DEFAULT_POLL_BATCH_SIZE", "HEADROOM_FACTOR", "_NOT_MEASURED"):
        assert getattr(module, name) == getattr(partition_state_module, name), name


# --- the same behaviour, operation by operation ----------------------------------------------


def _item(rng: random.Random, work_id: int, lanes: list[Any]) -> WorkItem[int]:
    key = rng.choice([None, b"", b"k", b"key"])
    value = rng.choice([None, b"", b"v" * rng.randrange(1, 50)])
    record = Record("t", rng.randrange(3), work_id, key, value)
    return WorkItem(work_id, rng.choice(lanes), record, owner=record.partition, received_at=0.0)


def _batch_item(rng: random.Random, work_id: int, lanes: list[Any]) -> WorkItem[int]:
    records = [_item(rng, work_id, lanes).record for _ in range(rng.randrange(1, 5))]
    return WorkItem(work_id, rng.choice(lanes), records, owner=0, received_at=0.0)  # type: ignore[arg-type]


@needs_native
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("cap", [None, 1, 3])
@pytest.mark.parametrize("sizer", ["record_bytes", "batch_bytes", "custom"])
def test_backlogs_agree_on_random_operations(seed: int, cap: int | None, sizer: str) -> None:
    rng = random.Random(seed)
    lanes: list[Any] = [None, "a", "b", ("c", 1), 7]
    twins = []
    for implementation in ("pure", "native"):
        names = backlog_twin(implementation)
        size_of = getattr(names, sizer) if sizer != "custom" else (lambda item: item.id % 5)
        twins.append(names.Backlog(cap, size_of=size_of))
    make = _batch_item if sizer == "batch_bytes" else _item
    outstanding: list[Any] = []  # lanes of ordered records taken and not done yet
    for step in range(600):
        op = rng.random()
        if op < 0.45:
            item = make(rng, step, lanes)
            for backlog in twins:
                backlog.add(item)
        elif op < 0.75:
            limit = rng.randrange(0, 8)
            taken = [backlog.take(limit) for backlog in twins]
            assert [i.id for i in taken[0]] == [i.id for i in taken[1]], step
            outstanding.extend(i.lane for i in taken[0] if i.lane is not None)
        elif op < 0.9 and outstanding:
            lane = outstanding.pop(rng.randrange(len(outstanding)))
            for backlog in twins:
                backlog.done(lane)
        elif op < 0.91 and cap is not None:
            # A lane with nothing outstanding: both refuse alike.
            lane = rng.choice([lane for lane in lanes[1:] if lane not in outstanding] or ["z"])
            for backlog in twins:
                with pytest.raises(KeyError):
                    backlog.done(lane)
        elif op < 0.95:
            partition = rng.randrange(3)
            # The predicate sees the same records (lanes may come in another order).
            doomed_ids: list[list[int]] = [[] for _ in twins]
            for backlog, seen in zip(twins, doomed_ids, strict=True):

                def doomed(item: WorkItem[int], seen: list[int] = seen, p: int = partition) -> bool:
                    seen.append(item.id)
                    return item.owner == p

                backlog.remove_if(doomed)
            assert sorted(doomed_ids[0]) == sorted(doomed_ids[1])
        elif op < 0.97:
            for backlog in twins:
                backlog.clear()
        assert len(twins[0]) == len(twins[1]) and twins[0].bytes == twins[1].bytes, step


@needs_native
@pytest.mark.parametrize("seed", range(30))
def test_partition_states_agree_on_random_operations(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([64, 256, 1024, 4096])
    batch = rng.choice([5, 20, 100])
    committed = rng.choice([None, 0, 10])
    already = {o for o in range(10, 80) if rng.random() < 0.2} if committed == 10 else None
    states = [
        partition_state_class(implementation)(
            "t",
            0,
            1,
            committed,
            None if already is None else set(already),
            metadata_limit=limit,
            poll_batch_size=batch,
        )
        for implementation in ("pure", "native")
    ]
    next_offset = committed or 0
    incomplete: list[int] = []
    for step in range(3_000):
        op = rng.random()
        if op < 0.45:
            next_offset += 1 if rng.random() < 0.8 else rng.randrange(2, 3_000)
            received = [state.receive(next_offset) for state in states]
            assert received[0] == received[1], step
            if received[0]:
                incomplete.append(next_offset)
        elif op < 0.85 and incomplete:
            # Mostly in order, sometimes anywhere: key order with a slow key.
            index = 0 if rng.random() < 0.5 else rng.randrange(len(incomplete))
            offset = incomplete.pop(index)
            for state in states:
                state.complete(offset)
        elif op < 0.92:
            for state in states:
                state.check_fit()
        elif op < 0.97:
            points = [state.commit_point() for state in states]
            assert points[0] == points[1], step
            if points[0] is not None and rng.random() < 0.7:
                for state in states:
                    state.mark_committed(*points[0])
        else:
            position = next_offset + rng.randrange(0, 5)
            for state in states:
                state.advance(position)
            if not incomplete:
                next_offset = max(next_offset, position - 1)
        assert _observed(states[0]) == _observed(states[1]), step


def _observed(state: Any) -> tuple[Any, ...]:
    return (
        state.position,
        state.next_offset,
        state.idle,
        state.incomplete,
        state.completed_above,
        state.blocked,
        state.committed,
        state.committed_metadata,
    )


@needs_native
def test_the_native_backlog_can_be_subscripted_like_the_generic_twin() -> None:
    backlog_class = backlog_twin("native").Backlog
    assert backlog_class[int] is not None


@needs_native
def test_the_native_partition_state_attributes_are_public_and_settable() -> None:
    state = partition_state_class("native")("orders", 2, epoch=7)
    state.paused = True
    state.revoked = True
    state.high_watermark = 42
    state.next_offset = 5
    assert (state.topic, state.partition, state.epoch) == ("orders", 2, 7)
    assert (state.paused, state.revoked, state.high_watermark, state.position) == (
        True,
        True,
        42,
        5,
    )
    state.next_offset = None
    assert state.position is None


def test_bench_results_record_the_structures_in_use() -> None:
    from bench.output.environment import environment_metadata

    assert environment_metadata()["structures"] == native.implementation()


@needs_native
def test_every_extension_declares_it_runs_without_the_gil() -> None:
    """A free-threaded Python turns the GIL back on for the whole process when it imports a
    module that does not declare Py_MOD_GIL_NOT_USED (setup.py says why each one may)."""
    generated = sorted((ROOT / "ext").glob("*.c"))
    if not generated:
        pytest.skip("the generated C sources are not here (built elsewhere)")
    # Cython (3.1+) writes the module's default after the CYTHON_FREETHREADING_COMPATIBLE
    # override: Py_MOD_GIL_USED unless the freethreading_compatible directive was given.
    default = re.compile(r"#endif\n#else\n#define __Pyx_FREETHREADING_COMPATIBLE (\w+)\n")
    declared = {c.name: default.findall(c.read_text()) for c in generated}
    assert declared == {name: ["Py_MOD_GIL_NOT_USED"] for name in declared}
