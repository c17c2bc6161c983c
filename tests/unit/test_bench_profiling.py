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
    assert "top 5" in out and "ttot s" in out and "asyncio tasks profiled" in out


def test_worker_hooks_save_one_file_per_process(tmp_path: Path) -> None:
    profiling.start_worker_profile("cpu")
    _busy()
    profiling.stop_worker_profile(str(tmp_path), "pyrallel-process")
    (saved,) = profiling.worker_profiles(tmp_path, "pyrallel-process")
    assert saved.name == f"pyrallel-process-worker-{os.getpid()}.prof"
    pstats.Stats(str(saved))
    profiling.clear_worker_profiles(tmp_path, "pyrallel-process")
    assert not profiling.worker_profiles(tmp_path, "pyrallel-process")
