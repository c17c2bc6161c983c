"""The failure policy: what happens to a record whose handler failed every attempt.

`on_failure='skip'`: the record is skipped (completed, logged). `'dead_letter'`: it is written
to the dead-letter topic and completed only once the broker acknowledged the dead letter, so
it is never committed past before that. `'stop'`: the consumer stops with ProcessingError and
the record stays uncommitted.

Ownership: the control thread (delivery callbacks run inside `poll`/`flush` on it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.dead_letter import DeadLetterSink
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.errors import DeadLetterError, ProcessingError
from pyrallel_consumer.work import Report, WorkItem

log = logging.getLogger("pyrallel_consumer")

Item = WorkItem[PartitionState]
# Marks an item completed: (item, its report, whether the handler succeeded).
Complete = Callable[[Item, Report, bool], None]
# Stops the consumer with this error (the first one wins).
Fail = Callable[[Exception], None]


class FailurePolicy:
    """Applies `config.on_failure`; counts `failed`, `skipped` and `dead_lettered`."""

    def __init__(
        self,
        config: ConsumerConfig,
        counters: Counters,
        dead_letters: DeadLetterSink | None,
        complete: Complete,
        fail: Fail,
    ) -> None:
        self._config = config
        self._counters = counters
        self._dead_letters = dead_letters
        self._complete = complete
        self._fail = fail
        # Failed records whose dead letter is not acknowledged yet: they hold in-flight room.
        self.dead_lettering = 0

    def failed(self, item: Item, report: Report) -> None:
        record = item.record
        error = report.error or "unknown error"
        self._counters.failed += 1
        policy = self._config.on_failure
        if policy == "skip":
            log.warning("skipping %r after %d attempts: %s", record, report.attempts, error)
            self._counters.skipped += 1
            self._complete(item, report, False)
        elif policy == "dead_letter" and self._dead_letters is not None:
            self.dead_lettering += 1

            def delivered(delivery_error: str | None) -> None:
                self.dead_lettering -= 1
                if delivery_error is not None:
                    self._fail(
                        DeadLetterError(
                            f"could not write {record!r} to dead-letter topic "
                            f"{self._config.dlq_topic!r}: {delivery_error}; it stays uncommitted"
                        )
                    )
                elif not item.owner.revoked:  # fenced: the new owner redoes it
                    self._counters.dead_lettered += 1
                    self._complete(item, report, False)

            self._dead_letters.publish(record, error, report.attempts, delivered)
        else:
            self._fail(
                ProcessingError(
                    record.topic, record.partition, record.offset, report.attempts, error
                )
            )

    def poll(self) -> None:
        """Serve dead-letter acknowledgements that are due; never blocks."""
        if self._dead_letters is not None:
            self._dead_letters.poll()

    def flush(self, timeout: float) -> None:
        if self._dead_letters is not None:
            self._dead_letters.flush(timeout)
