"""Process engine started from a script: faults 3 and 4 of issue 10.

- Fault 3: a script without the `if __name__ == "__main__":` guard. Each spawned worker
  re-imports the script; run() must fail fast with one clear error naming the guard and the fix,
  instead of restarting workers forever.
- Fault 4: Ctrl-C in a terminal sends SIGINT to the whole process group. Workers must ignore it
  (shutdown is the parent's job): the run drains and exits cleanly, no worker is restarted and
  no record is handled twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from faults_support import (
    committed_offset,
    group_name,
    read_trace,
    start_script,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HERE = Path(__file__).parent
FAIL_FAST_S = 45.0  # generous: spawning two workers and seeing them fail takes seconds
EXIT_S = 60.0
GUARD = 'if __name__ == "__main__":'


def _finish(process: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The exit code, or None after killing the process group when it ran past `timeout`."""
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        return None


def test_missing_main_guard_fails_fast_with_one_clear_error(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, 10)
    process = start_script(
        HERE / "unguarded_script.py",
        [kafka_broker.bootstrap_servers, topic, group_name("unguarded")],
        tmp_path,
        new_session=True,
    )
    code = _finish(process, FAIL_FAST_S)
    stderr = (tmp_path / "stderr.txt").read_text(errors="replace")
    stdout = (tmp_path / "stdout.txt").read_text(errors="replace")
    assert code is not None, (
        f"still running after {FAIL_FAST_S:.0f} s; {len(stderr)} bytes of stderr, ending: "
        f"{stderr[-1500:]}"
    )
    assert code != 0
    assert "run() returned" not in stdout
    assert GUARD in stderr, stderr[-3000:]
    assert stderr.count("Traceback") <= 1, f"{stderr.count('Traceback')} tracebacks"
    assert len(stderr) < 20_000, f"{len(stderr)} bytes of stderr"


def test_sigint_to_the_process_group_drains_without_redoing_work(
    kafka_broker: Any,
    new_topic: Callable[..., str],
    produce: Callable[..., list[Any]],
    tmp_path: Path,
) -> None:
    records = 400
    topic = new_topic(kafka_broker, 1)
    produce(kafka_broker, topic, records, keys=None)
    group = group_name("sigint")
    process = start_script(
        HERE / "sigint_script.py",
        [kafka_broker.bootstrap_servers, topic, group],
        tmp_path,
        new_session=True,
    )
    try:
        # Workers are busy (eight records running at once, 0.2 s each) when Ctrl-C arrives.
        wait_for(
            lambda: len(read_trace(tmp_path, "start")) >= 24,
            "records to be handled",
            alive=lambda: process.poll() is None,
        )
        os.killpg(process.pid, signal.SIGINT)
        code = _finish(process, EXIT_S)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    stderr = (tmp_path / "stderr.txt").read_text(errors="replace")
    stdout = (tmp_path / "stdout.txt").read_text(errors="replace")
    assert code == 0, f"exit code {code}; stderr: {stderr[-3000:]}"
    assert "KeyboardInterrupt" not in stderr, stderr[-3000:]
    assert "worker_restarts=0" in stdout, stdout

    started = [int(line) for line in read_trace(tmp_path, "start")]
    twice = sorted({o for o in started if started.count(o) > 1})
    assert not twice, f"{len(twice)} records handled twice, e.g. {twice[:5]}"
    assert len(started) < records, "the run finished before Ctrl-C"
    # Everything that started was drained and committed: a restart redoes none of it.
    assert set(started) == set(range(committed_offset(kafka_broker, group, topic)))
