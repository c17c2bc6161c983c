"""Closing the process engine with records still in a worker (no Kafka: items submitted
straight to the engine). The consumer closes its engine only after its last commit, so a
record that had not started by then can never be committed: the worker must not start it."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest
from engine_support import WAIT_S, collect, make_items, process_engine, wait_until

from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


def note_and_sleep(directory: str, record: Record) -> None:
    """Leaves a file per call, so the calls made can be counted afterwards. The first record
    takes 1 s: ample time for the finish message to arrive while it runs."""
    (Path(directory) / f"called-{record.offset}").touch()
    if record.offset == 0:
        time.sleep(1.0)


def test_close_lets_the_running_records_finish_and_starts_no_other(
    engines: list[Engine], tmp_path: Path
) -> None:
    """Ten records of one key in one worker thread; close() while the first runs. Before, the
    worker ran all ten, for results nobody would commit."""
    handler = functools.partial(note_and_sleep, str(tmp_path))
    engine = process_engine(handler, engines, worker_concurrency=1)
    engine.start()
    assert engine.wait_ready(WAIT_S)
    engine.submit(make_items(10, keys=1))
    wait_until((tmp_path / "called-0").exists, "the first record started")
    engine.close(10.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["called-0"]


def test_abandon_lets_the_running_record_finish_and_cancels_the_rest_in_the_worker(
    engines: list[Engine], tmp_path: Path
) -> None:
    """The run stops on an error (the control plane cancels what is in flight, then calls
    abandon): a worker starts none of the records it holds. Before, it ran them all, with
    their retries, and the stop waited for them (about 26 s for 960 failing records)."""
    handler = functools.partial(note_and_sleep, str(tmp_path))
    engine = process_engine(handler, engines, worker_concurrency=1)
    engine.start()
    assert engine.wait_ready(WAIT_S)
    items = make_items(10, keys=1)
    engine.submit(items)
    wait_until((tmp_path / "called-0").exists, "the first record started")
    for item in items:
        item.cancelled = True
    engine.abandon()
    outcomes = {item_id: report.outcome for item_id, report in collect(engine, 10).items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["called-0"]
    assert outcomes[items[0].id] is Outcome.SUCCEEDED
    assert [outcomes[item.id] for item in items[1:]] == [Outcome.CANCELLED] * 9


def noop(record: Record) -> None:
    """Nothing to do."""


def note_exit(directory: str) -> None:
    """A worker_exit hook: leaves a file per worker that ran it."""
    (Path(directory) / f"exited-{os.getpid()}").touch()


def test_idle_workers_exit_by_themselves_even_with_no_time_left(
    engines: list[Engine], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The shutdown closes the engine with what its deadline left, 0 after a drain that ran
    out: workers with nothing running still get EXIT_GRACE_S to exit and run their worker_exit
    hooks, rather than be killed."""
    engine = process_engine(
        noop, engines, worker_exit=functools.partial(note_exit, str(tmp_path)), workers=2
    )
    engine.start()
    assert engine.wait_ready(WAIT_S)
    engine.close(0.0)
    assert len(list(tmp_path.glob("exited-*"))) == 2
    assert "did not exit in time" not in caplog.text
