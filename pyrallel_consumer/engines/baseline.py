"""The reference engine: each record handled inline, one at a time, by the control thread."""

from __future__ import annotations

import time
from collections.abc import Sequence

from pyrallel_consumer.engines.attempts import call_with_retries
from pyrallel_consumer.engines.base import Engine
from pyrallel_consumer.work import Outcome, Report, WorkItem


class BaselineEngine(Engine):
    """Runs every submitted item before `submit` returns: trivially ordered, no concurrency."""

    name = "baseline"
    records_per_turn = 1

    def start(self) -> None:
        self._reports: list[Report] = []

    def submit(self, items: Sequence[WorkItem[object]]) -> None:
        handler, policy, reports = self.handler, self.config.retry, self._reports
        for item in items:
            if item.cancelled:
                reports.append(Report(item.id, Outcome.CANCELLED, 0, time.monotonic()))
                continue
            outcome, attempts, error = call_with_retries(handler, item.record, policy)
            reports.append(Report(item.id, outcome, attempts, time.monotonic(), error))

    def reports(self) -> list[Report]:
        reports, self._reports = self._reports, []
        return reports

    def wait(self, timeout: float) -> None:
        """Nothing runs in the background, so there is nothing to wait for."""

    def close(self, timeout: float) -> None:
        """Nothing to release."""
