"""The reference engine: each record handled inline, one at a time, by the control thread."""

from __future__ import annotations

import time

from pyrallel_consumer.engines.attempts import call_with_retries
from pyrallel_consumer.engines.base import SKIPPED, Done, Engine, WorkItem


class BaselineEngine(Engine):
    """Runs every submitted item before `submit` returns: trivially ordered, no concurrency."""

    name = "baseline"
    records_per_turn = 1

    def start(self) -> None:
        self._done: list[Done] = []

    def submit(self, items: list[WorkItem]) -> None:
        handler, policy, done = self.handler, self.config.retry, self._done
        for item in items:
            if item.cancelled:
                done.append(Done(item.id, SKIPPED, 0, time.monotonic()))
                continue
            status, attempts, error = call_with_retries(handler, item.record, policy)
            done.append(Done(item.id, status, attempts, time.monotonic(), error))

    def drain(self) -> list[Done]:
        done, self._done = self._done, []
        return done

    def wait(self, timeout: float) -> None:
        """Nothing runs in the background, so there is nothing to wait for."""

    def close(self, timeout: float) -> None:
        """Nothing to release."""
