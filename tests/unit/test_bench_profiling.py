"""yappi wrapper: pstat files that pstats can read, the top-N table, worker hooks."""

from __future__ import annotations

import asyncio
import os
import pstats
import time
from pathlib import Path

import pytest

from bench.measure import profiling


def _busy() -> None:
    time.sleep(0.01)
    sum(range(10_000))


def test_profiled_writes_pstat_and_prints_top_n(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = profiling.ProfileSettings(directory=tmp_path, top_n=5, greenlets=True)
    path = profiling.profile_path(tmp_path, "pyrallel-async-io")
    assert path.name == "pyrallel-async-io.prof"
    with profiling.profiled(settings, path, "async/io"):
        _busy()
        asyncio.run(asyncio.sleep(0.01))
    stats = pstats.Stats(str(path))
    assert any(func[2] == "_busy" for func in stats.stats)  # type: ignore[attr-defined]
    out = capsys.readouterr().out
    assert "top 5" in out and "ttot s" in out and "asyncio task kinds profiled" in out


def test_worker_hooks_save_one_file_per_process(tmp_path: Path) -> None:
    profiling.start_worker_profile("cpu")
    _busy()
    profiling.stop_worker_profile(str(tmp_path), "pyrallel-process")
    (saved,) = profiling.worker_profiles(tmp_path, "pyrallel-process")
    assert saved.name == f"pyrallel-process-worker-{os.getpid()}.prof"
    pstats.Stats(str(saved))
    profiling.clear_worker_profiles(tmp_path, "pyrallel-process")
    assert not profiling.worker_profiles(tmp_path, "pyrallel-process")


async def _named_coroutine() -> None:
    _busy()
    await asyncio.sleep(0)


def test_greenlet_profiles_name_tasks_by_coroutine_function(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = profiling.ProfileSettings(directory=tmp_path, top_n=5, greenlets=True)
    with profiling.profiled(settings, tmp_path / "p.prof", "async"):
        asyncio.run(_named_coroutine())
    tasks = capsys.readouterr().out.split("asyncio task kinds profiled", 1)[1]
    assert "_named_coroutine (test_bench_profiling.py:" in tasks
    assert "0x" not in tasks  # no addresses


def test_worker_profiles_are_printed_aggregated(tmp_path: Path) -> None:
    for stem in ("pyrallel-process-worker-1", "pyrallel-process-worker-2"):
        profiling.start_worker_profile("cpu")
        _busy()
        yappi_path = tmp_path / f"{stem}.prof"
        profiling.stop_worker_profile(str(tmp_path), "pyrallel-process")
        (tmp_path / f"pyrallel-process-worker-{os.getpid()}.prof").rename(yappi_path)
    text = profiling.aggregate_top(profiling.worker_profiles(tmp_path, "pyrallel-process"), 5, "x")
    assert "2 process workers aggregated" in text
    assert "_busy" in text
