"""The one interface every engine implements, and the work it receives.

Engines never touch the Kafka consumer: the control plane submits `WorkItem`s and drains
`Done` reports. The ordering contract lives in the lane: items that share a lane run one at a
time, in submission order; `lane=None` means unordered. That lets an engine keep one worker
loop per active lane instead of a round trip through the control plane per record.

Thread ownership: `submit`, `drain`, `wait`, `close` are called by the control thread only.
Engines run handlers on their own threads/processes and hand results back through `drain`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Hashable
from typing import Any

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.record import Record

# Outcome of a work item, as reported by an engine.
OK = 0
FAILED = 1  # the handler raised on every attempt; `error` holds the last traceback
SKIPPED = 2  # cancelled before it started (its partition was revoked)

Handler = Callable[[Record], Any]


class WorkItem:
    """One record submitted to an engine. `cancelled` may be set by the control thread."""

    __slots__ = ("cancelled", "id", "lane", "owner", "received_at", "record")

    def __init__(
        self, id: int, lane: Hashable | None, record: Record, owner: Any, received_at: float
    ) -> None:
        self.id = id
        self.lane = lane
        self.record = record
        self.owner = owner  # the control plane's PartitionState; engines must not use it
        self.received_at = received_at
        self.cancelled = False


class Done:
    """An engine's report on one work item."""

    __slots__ = ("attempts", "completed_at", "error", "id", "status")

    def __init__(
        self, id: int, status: int, attempts: int, completed_at: float, error: str | None = None
    ) -> None:
        self.id = id
        self.status = status
        self.attempts = attempts
        self.completed_at = completed_at
        self.error = error


class Engine(abc.ABC):
    """Runs a handler over submitted work, honouring lanes; reports completions."""

    name: str = "engine"
    # Records the control plane fetches and submits per loop turn; None: as many as fit.
    records_per_turn: int | None = None

    def __init__(self, handler: Handler, config: ConsumerConfig) -> None:
        self.handler = handler
        self.config = config

    def start(self) -> None:  # noqa: B027  # optional hook: most engines start lazily
        """Allocate threads/processes. Called once before the first submit."""

    @abc.abstractmethod
    def submit(self, items: list[WorkItem]) -> None:
        """Accept items for execution. Must not block on handler work beyond a short, bounded
        wait (the baseline waits up to its turn budget, so it stays the classic
        consume-handle-commit loop): the poll loop must keep serving the group."""

    @abc.abstractmethod
    def drain(self) -> list[Done]:
        """Reports available now; never blocks. Raises a PyrallelError (once) when the
        engine cannot go on, e.g. WorkerError from the process engine; the control plane lets
        it end the run. Items the engine gave up on are reported SKIPPED, so nothing waits
        for them and none is committed."""

    @abc.abstractmethod
    def wait(self, timeout: float) -> None:
        """Block until a report is available or `timeout` seconds passed."""

    @abc.abstractmethod
    def close(self, timeout: float) -> None:
        """Stop accepting work, let started work finish within `timeout`, release resources.
        Work not finished by then is abandoned (the control plane does not commit it)."""

    def describe(self) -> dict[str, Any]:
        """Facts for stats() and the bench (implementation choices, sizes)."""
        return {"engine": self.name}
