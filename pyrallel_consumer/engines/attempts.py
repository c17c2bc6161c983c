"""Calling a handler with retries: the same policy for every engine, sync and async.

Retries happen inside the lane, before the next item of that lane starts, so `key` and
`partition` ordering hold through failures.

What a handler may raise, and what it becomes (the same in every engine and in batch mode):
- any `Exception`, and any other `BaseException` (GeneratorExit, a custom subclass, an
  `asyncio.CancelledError` the handler raised itself, say from a task of its own that was
  cancelled): a failed attempt, retried with the usual backoff, then FAILED;
- `SystemExit` or `KeyboardInterrupt`: STOPPED at once, no retry (the user asked to stop; the
  control plane ends the run cleanly with errors.HandlerExit);
- an `asyncio.CancelledError` that cancels the runner's own task (CoroutineLaneRunner.close
  abandoning work at shutdown) propagates: it is not the handler's failure, and the item it
  interrupts must stay uncommitted rather than be given to the failure policy.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

log = logging.getLogger("pyrallel_consumer.engines")


class Attempted(NamedTuple):
    """The result of calling a handler until it succeeded, the retries ran out, or it asked to
    stop."""

    outcome: Outcome  # SUCCEEDED, FAILED or STOPPED
    attempts: int  # handler calls made, >= 1
    error: str | None  # the last traceback when FAILED or STOPPED


# The common result, built once: a NamedTuple built per record costs ~0.5 us on the hot path.
_FIRST_TRY = Attempted(Outcome.SUCCEEDED, 1, None)

# A handler raising these asks for the process to stop: retrying would defeat it.
STOP_EXCEPTIONS = (SystemExit, KeyboardInterrupt)


def error_text(exc: BaseException) -> str:
    """The traceback of `exc` as one string, without the trailing newline."""
    return "".join(traceback.format_exception(exc)).rstrip()


def call_with_retries(
    handler: Callable[[Record], Any],
    record: Record,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempted:
    """Call `handler(record)` until it returns or `policy.retries` retries ran out, sleeping
    `policy.delay` seconds between attempts. Never raises what the handler raises."""
    attempt = 0
    while True:
        attempt += 1
        try:
            handler(record)
            return _FIRST_TRY if attempt == 1 else Attempted(Outcome.SUCCEEDED, attempt, None)
        except STOP_EXCEPTIONS as exc:
            return Attempted(Outcome.STOPPED, attempt, error_text(exc))
        except BaseException as exc:
            if attempt > policy.retries:
                return Attempted(Outcome.FAILED, attempt, error_text(exc))
        sleep(policy.delay(attempt, random.random()))


def _task_cancelled() -> bool:
    """Whether someone called cancel() on the running task (and nobody uncancelled it).

    How a CancelledError from the runner's shutdown is told apart from one the handler raised:
    both have the same type, but only a cancel() of the task counts in `cancelling()`
    (Python 3.11+). A handler awaiting a future or task of its own that was cancelled gets a
    CancelledError with the count at 0.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def call_with_retries_async(
    handler: Callable[[Record], Awaitable[Any]],
    record: Record,
    policy: RetryPolicy,
) -> Attempted:
    """The same as `call_with_retries` for an `async def` handler. Raises CancelledError only
    when the task running it is cancelled (shutdown), during the handler or the backoff."""
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(record)
            return _FIRST_TRY if attempt == 1 else Attempted(Outcome.SUCCEEDED, attempt, None)
        except STOP_EXCEPTIONS as exc:
            return Attempted(Outcome.STOPPED, attempt, error_text(exc))
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError) and _task_cancelled():
                raise
            if attempt > policy.retries:
                return Attempted(Outcome.FAILED, attempt, error_text(exc))
        await asyncio.sleep(policy.delay(attempt, random.random()))


def escaped(exc: BaseException) -> Attempted:
    """The result for an item when `exc` escaped `call_with_retries` (a bug, not the
    handler's exception, which never escapes): FAILED after one attempt with the traceback,
    so the item is still reported and its lane released, and the failure policy takes it.
    A lane runner's loop calls this rather than end with the item in flight."""
    log.error("an engine's lane runner failed while running a record", exc_info=exc)
    return Attempted(Outcome.FAILED, 1, error_text(exc))
