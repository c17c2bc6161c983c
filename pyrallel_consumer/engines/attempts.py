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
from typing import Any

from pyrallel_consumer.config import RetryPolicy
from pyrallel_consumer.engines.base import FAILED, OK
from pyrallel_consumer.record import Record

Attempted = tuple[int, int, str | None]  # (status, attempts, error text)


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
            return OK, attempt, None
        except Exception as exc:
            if attempt > policy.retries:
                return FAILED, attempt, _error_text(exc)
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
            return OK, attempt, None
        except Exception as exc:
            if attempt > policy.retries:
                return FAILED, attempt, _error_text(exc)
        await asyncio.sleep(policy.delay(attempt, random.random()))
