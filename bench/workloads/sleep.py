"""The `sleep` workload: each record waits `--worker-sleep-ms` (time.sleep, or asyncio.sleep
on the engines that run coroutines)."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from bench.workloads.base import Handler, Workload, wants_coroutine


def sleep_sync(sleep_s: float, record: Any) -> None:
    time.sleep(sleep_s)


async def sleep_async(sleep_s: float, record: Any) -> None:
    await asyncio.sleep(sleep_s)


class SleepWorkload(Workload):
    name = "sleep"
    summary = "per-record sleep of --worker-sleep-ms"

    def handler(self, engine: str) -> Handler:
        function = sleep_async if wants_coroutine(engine) else sleep_sync
        return functools.partial(function, self.settings.sleep_ms / 1000)

    def service_time_s(self) -> float:
        return self.settings.sleep_ms / 1000
