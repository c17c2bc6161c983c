"""Calling a handler with retries: the same policy for every engine, sync and async.

A retrying item keeps its lane: the next item of that lane starts only after its last attempt,
so `key` and `partition` ordering hold through failures. How the backoff between attempts is
waited out depends on the runner, the bookkeeping (`after_failure`) is shared:
- ThreadLaneRunner (lanes.py) holds no thread: a failed attempt goes to a RetryQueue
  (retry_queue.py) and back to the ready queue when due, while its thread runs other lanes;
- CoroutineLaneRunner awaits `asyncio.sleep` (`retry_after_async`): no thread held either;
- the baseline engine runs one record at a time by design, so it sleeps inline
  (`retry_after`): there is no other work its thread could do meanwhile.
Every runner calls the handler itself for the first attempt and enters this module's retry
functions only after a failure: the success path costs no call per record.

What a handler may raise, and what it becomes (the same in every engine and in batch mode):
- any `Exception`, and any other `BaseException` (GeneratorExit, a custom subclass, an
  `asyncio.CancelledError` the handler raised itself, say from a task of its own that was
  cancelled): a failed attempt, retried with the usual backoff, then FAILED;
- `SystemExit` or `KeyboardInterrupt`: STOPPED at once, no retry (the user asked to stop; the
  control plane ends the run cleanly with errors.HandlerExit);
- an `asyncio.CancelledError` that cancels the runner's own task (CoroutineLaneRunner.close
  abandoning work at shutdown) propagates: it is not the handler's failure, and the item it
  interrupts must stay uncommitted rather than be given to the failure policy.

Threads: no state; each function runs on the thread (or event loop) of the runner calling it.
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
from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome

log = logging.getLogger("pyrallel_consumer.engines")


class Attempted(NamedTuple):
    """The result of calling a handler until it succeeded, the retries ran out, or it asked to
    stop."""

    outcome: Outcome  # SUCCEEDED, FAILED or STOPPED
    attempts: int  # handler calls made, >= 1
    error: str | None  # the last traceback when FAILED or STOPPED
    # With outputs=True, what the succeeding call returned to produce (output.outputs_of).
    outputs: list[Output] | None = None


# Turns a handler's return value into its outputs (output.collector: with outputs=False none,
# and an Output returned is refused); None: return values are ignored.
Collect = Callable[[Any], "list[Output] | None"] | None


# The common result, built once: a NamedTuple built per record costs ~0.5 us on the hot path.
FIRST_TRY = Attempted(Outcome.SUCCEEDED, 1, None)

# A handler raising these asks for the process to stop: retrying would defeat it.
STOP_EXCEPTIONS = (SystemExit, KeyboardInterrupt)


def error_text(exc: BaseException) -> str:
    """The traceback of `exc` as one string, without the trailing newline."""
    return "".join(traceback.format_exception(exc)).rstrip()


def succeeded(attempts: int, outputs: list[Output] | None = None) -> Attempted:
    """The result of a handler call that returned on attempt number `attempts` (1-based),
    with the outputs it returned, if any."""
    if outputs is not None:
        return Attempted(Outcome.SUCCEEDED, attempts, None, outputs)
    return FIRST_TRY if attempts == 1 else Attempted(Outcome.SUCCEEDED, attempts, None)


def after_failure(exc: BaseException, attempt: int, policy: RetryPolicy) -> Attempted | float:
    """What follows attempt number `attempt` (1-based) raising `exc`: the final result (STOPPED
    for SystemExit/KeyboardInterrupt, FAILED when the retries ran out), or the backoff in
    seconds before the next attempt. Raises only what `policy.delay` raises."""
    if isinstance(exc, STOP_EXCEPTIONS):
        return Attempted(Outcome.STOPPED, attempt, error_text(exc))
    if attempt > policy.retries:
        return Attempted(Outcome.FAILED, attempt, error_text(exc))
    return policy.delay(attempt, random.random())


def retry_after(
    exc: BaseException,
    handler: Callable[[Record], Any],
    record: Record,
    policy: RetryPolicy,
    collect: Collect = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempted:
    """The attempts after the first one failed with `exc`: `handler(record)` again until it
    returns or `policy.retries` retries ran out, sleeping `policy.delay` seconds between
    attempts on the calling thread; with `collect`, the return value becomes the outputs
    (within the attempt: what collecting raises fails it). Never raises what the handler
    raises. A runner calls the handler itself first and pays for this only after a failure
    (no call, no frame per record on the success path)."""
    attempt = 1
    while True:
        result = after_failure(exc, attempt, policy)
        if isinstance(result, Attempted):
            return result
        sleep(result)
        attempt += 1
        try:
            returned = handler(record)
            outputs = None if collect is None else collect(returned)
        except BaseException as again:
            exc = again
        else:
            return succeeded(attempt, outputs)


def _task_cancelled() -> bool:
    """Whether someone called cancel() on the running task (and nobody uncancelled it).

    How a CancelledError from the runner's shutdown is told apart from one the handler raised:
    both have the same type, but only a cancel() of the task counts in `cancelling()`
    (Python 3.11+). A handler awaiting a future or task of its own that was cancelled gets a
    CancelledError with the count at 0.
    """
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def retry_after_async(
    exc: BaseException,
    handler: Callable[[Record], Awaitable[Any]],
    record: Record,
    policy: RetryPolicy,
    collect: Collect = None,
) -> Attempted:
    """`retry_after` for an `async def` handler, awaiting `asyncio.sleep` between attempts: a
    runner awaits the handler itself and enters this only after the first attempt raised `exc`.
    Raises CancelledError (`exc` itself, or from a later attempt or backoff) only when the task
    running it is cancelled (shutdown); any other exception is a failed attempt."""
    attempt = 1
    while True:
        if isinstance(exc, asyncio.CancelledError) and _task_cancelled():
            raise exc
        result = after_failure(exc, attempt, policy)
        if isinstance(result, Attempted):
            return result
        await asyncio.sleep(result)  # a cancel() here raises: the task is being cancelled
        attempt += 1
        try:
            returned = await handler(record)
            outputs = None if collect is None else collect(returned)
        except BaseException as again:
            exc = again
        else:
            return succeeded(attempt, outputs)


def escaped(exc: BaseException, attempts: int = 1) -> Attempted:
    """The result for an item when `exc` escaped `retry_after` or `after_failure` (a bug,
    not the handler's exception, which never escapes) during attempt number `attempts`: FAILED
    with the traceback, so the item is still reported and its lane released, and the failure
    policy takes it. A lane runner's loop calls this rather than end with the item in flight."""
    log.error("an engine's lane runner failed while running a record", exc_info=exc)
    return Attempted(Outcome.FAILED, attempts, error_text(exc))
