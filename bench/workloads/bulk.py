"""The `bulk` workload: the cost of a bulk write (a database insert, a bulk HTTP API) per call,
a fixed part plus a part per record, as a sleep: `--worker-bulk-fixed-ms` +
`--worker-bulk-per-record-ms` x records. Without `--batch-size` every record is a call of one.

It is the workload batch mode is for: a call of 100 records costs 5 + 100 x 0.05 = 10 ms with
the defaults, 0.1 ms a record instead of 5.05 ms.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any

from bench.workloads.base import Handler, Workload, wants_coroutine


def bulk_sync(fixed_s: float, per_record_s: float, records: list[Any]) -> None:
    time.sleep(fixed_s + per_record_s * len(records))


async def bulk_async(fixed_s: float, per_record_s: float, records: list[Any]) -> None:
    await asyncio.sleep(fixed_s + per_record_s * len(records))


def one_sync(fixed_s: float, per_record_s: float, record: Any) -> None:
    time.sleep(fixed_s + per_record_s)


async def one_async(fixed_s: float, per_record_s: float, record: Any) -> None:
    await asyncio.sleep(fixed_s + per_record_s)


class BulkWorkload(Workload):
    name = "bulk"
    summary = (
        "per call --worker-bulk-fixed-ms + --worker-bulk-per-record-ms x records (use with "
        "--batch-size)"
    )

    def _costs(self) -> tuple[float, float]:
        return self.settings.bulk_fixed_ms / 1000, self.settings.bulk_per_record_ms / 1000

    def handler(self, engine: str) -> Handler:
        function = one_async if wants_coroutine(engine) else one_sync
        return functools.partial(function, *self._costs())

    def batch_handler(self, engine: str) -> Handler:
        function = bulk_async if wants_coroutine(engine) else bulk_sync
        return functools.partial(function, *self._costs())

    def service_time_s(self) -> float:
        return self.call_time_s(1)

    def call_time_s(self, records: int) -> float:
        fixed, per_record = self._costs()
        return fixed + per_record * records

    def metadata(self) -> dict[str, Any]:
        return {
            "bulk_fixed_ms": self.settings.bulk_fixed_ms,
            "bulk_per_record_ms": self.settings.bulk_per_record_ms,
        }
