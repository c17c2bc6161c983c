"""What the process engine does when a worker process dies: names the cause, paces restarts,
and spots the script that starts a consumer at import time.

Rules (the process engine applies them; see process.py):
- A death with exactly one record outstanding in that worker blames that record: one failed
  attempt. After `retries` + 1 such attempts the record is reported failed with an error naming
  the exit code or signal, and the on-failure policy takes it (dead letter, skip, stop).
- A death with several records outstanding blames none yet. They are resent in groups of
  `worker_concurrency` (as many as a worker runs at once), in send order: a group that
  completes clears all of its records. A death during a group blames none either: that
  group's records still outstanding are then resent one at a time, so a record that kills its
  worker again is alone and blamed.
  Why groups first: most deaths have no culprit among the records (the OOM killer, an
  operator's kill), and one at a time cost every suspect a round trip of its own, a worker's
  512 of them as many handler times in a row while they held their in-flight room: a 5 ms
  handler stalled both workers for about 3 s. The price is one more death (a restart, about
  0.3 s) for a record that does kill its worker.
- A death with no record outstanding (at startup, in worker_init, killed while idle) has no
  record to blame: after `RESTART_BUDGET` of those in a row the engine gives up with WorkerError.
- Restarts back off exponentially while deaths follow each other with no record completing.

Threads: `settle` changes a worker's records and counts: its reader thread calls it under the
worker's lock (worker_handle.py). The rest keep no state (`exit_if_importing_main` runs where
the engine is built).
"""

from __future__ import annotations

import multiprocessing
import os
import signal

from pyrallel_consumer.engines.worker_handle import WorkerHandle
from pyrallel_consumer.work import Outcome, Report, WorkItem

# Deaths in a row with no record to blame before the engine gives up on the worker.
RESTART_BUDGET = 5
RESTART_BACKOFF_INITIAL_S = 0.1
RESTART_BACKOFF_MAX_S = 5.0

# The exit code of a worker that found itself re-importing a main module which starts a
# consumer at import time; distinct so the parent can tell this mistake from a crash.
MISSING_MAIN_GUARD_EXIT = 86

MISSING_MAIN_GUARD_MESSAGE = (
    "engine='process' could not start its workers: each worker re-imports your main module "
    "(multiprocessing's spawn start method does), and that module builds and runs the "
    "ParallelConsumer at import time, so every worker would start consumers of its own. Put "
    'that code under `if __name__ == "__main__":` in the script you run.'
)


def restart_delay(deaths_in_a_row: int) -> float:
    """Seconds to wait before restarting a worker after its `deaths_in_a_row`-th death (1-based)
    with no record completing in between."""
    exponent = max(0, deaths_in_a_row - 1)
    return float(min(RESTART_BACKOFF_MAX_S, RESTART_BACKOFF_INITIAL_S * 2**exponent))


def settle(
    worker: WorkerHandle,
    dead: list[WorkItem[object]],
    retries: int,
    pid: int | None,
    cause: str,
    now: float,
) -> Report | None:
    """Apply the rules above to `dead`, the records `worker` had outstanding (in send order)
    when process `pid` died of `cause` (worker's lock held; `dead` is not empty). Returns the
    FAILED report of a record blamed `retries` + 1 times, else None: the records are queued in
    `worker.regrouping` (sent again in groups) or `worker.isolating` (one at a time)."""
    if len(dead) > 1:
        # Several were running: which one killed the worker is unknown, so none is blamed
        # (blaming the oldest would fail an innocent record). Resent in the order they were
        # sent, so lane order holds: in groups after a first death; one at a time after a
        # death during a group (suspects already: while there are suspects, only they are
        # sent), ahead of the groups still to go, which were sent after them.
        queue = worker.isolating if dead[0].id in worker.suspects else worker.regrouping
        queue.extendleft(reversed(dead))
        for item in dead:
            worker.suspects.setdefault(item.id, 0)
        return None
    (item,) = dead
    crashes = worker.suspects.get(item.id, 0) + 1
    if crashes <= retries:
        worker.suspects[item.id] = crashes
        worker.isolating.appendleft(item)
        return None
    worker.suspects.pop(item.id, None)
    error = (
        f"WorkerDied: worker process {pid} died with {cause} while handling this record "
        f"alone, {crashes} time(s) (retries={retries})"
    )
    return Report(item.id, Outcome.FAILED, crashes, now, error)


def describe_exit(exitcode: int | None) -> str:
    """'exit code 3', 'signal SIGKILL' or 'an unknown cause', from Process.exitcode."""
    if exitcode is None:
        return "an unknown cause"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


def exit_if_importing_main() -> None:
    """Called when a process engine is built. In a worker that is still importing the parent's
    main module (spawn's bootstrap), building one means the script lacks the main guard: exit
    at once, quietly, with MISSING_MAIN_GUARD_EXIT, and let the parent raise one clear error.

    `_inheriting` is the flag multiprocessing itself checks for this mistake (it is set only
    while a spawned child unpickles its bootstrap data); no public API tells it apart from a
    consumer legitimately started inside a user's own child process.
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        os._exit(MISSING_MAIN_GUARD_EXIT)
