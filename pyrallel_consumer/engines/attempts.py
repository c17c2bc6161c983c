"""Calling a handler with retries: the same policy for every engine, sync and async.

Retries happen inside the lane, before the next item of that lane starts, so `key` and
`partition` ordering hold through failures.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Outcome


class Attempted(NamedTuple):
    """The result of calling a handler until it succeeded or the retries ran out."""

    outcome: Outcome  # SUCCEEDED or FAILED
    attempts: int  # handler calls made, >= 1
    error: str | None  # the last traceback when FAILED


# The common result, built once: a NamedTuple built per record costs ~0.5 us on the hot path.
_FIRST_TRY = Attempted(Outcome.SUCCEEDED, 1, None)


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def call_with_retries(
    handler: Callable[[Record], Any],
    record: Record,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> Attempted:
    attempt = 0
    while True:
        attempt += 1
        try:
            handler(record)
            return _FIRST_TRY if attempt == 1 else Attempted(Outcome.SUCCEEDED, attempt, None)
        except Exception as exc:
            if attempt > policy.retries:
                return Attempted(Outcome.FAILED, attempt, _error_text(exc))
        sleep(policy.delay(attempt, random.random()))


async def call_with_retries_async(
    handler: Callable[[Record], Awaitable[Any]],
    record: Record,
    policy: RetryPolicy,
) -> Attempted:
    attempt = 0
    while True:
        attempt += 1
        try:
            await handler(record)
            return _FIRST_TRY if attempt == 1 else Attempted(Outcome.SUCCEEDED, attempt, None)
        except Exception as exc:
            if attempt > policy.retries:
                return Attempted(Outcome.FAILED, attempt, _error_text(exc))
        await asyncio.sleep(policy.delay(attempt, random.random()))
