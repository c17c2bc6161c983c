"""The failure policy: what happens to a record whose handler failed every attempt.

`on_failure='skip'`: the record is skipped (completed, logged). `'dead_letter'`: it is written
to the dead-letter topic and completed only once the broker acknowledged the dead letter, so
it is never committed past before that; a dead letter that cannot be written ends the run with
DeadLetterError and the record stays uncommitted. `'stop'`: the run ends with ProcessingError
and the record stays uncommitted.

Counters, per failed record (`failed` counts them all): exactly one of `skipped`,
`dead_lettered`, `fenced` (its dead letter acknowledged after its partition was revoked: the
new owner redoes it) or an error that ends the run. `dead_lettering` counts records whose dead
letter is queued and not reported yet; it goes back down on every path (acknowledged, refused
at once, failed, given up at close), so the revoke grace and the shutdown drain never wait for
a dead letter that will not come.

Each skipped or dead-lettered record is logged once, at WARNING: topic[partition]@offset,
attempts, the error's last line and a bounded repr of the key (never the value: it may be
large or sensitive, and the dead letter has it).

Ownership: the control thread (delivery callbacks run inside `poll`/`close` on it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.dead_letter import DeadLetterSink
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.errors import DeadLetterError, ProcessingError, PyrallelError, last_line
from pyrallel_consumer.record import Record
from pyrallel_consumer.work import Report, WorkItem

log = logging.getLogger("pyrallel_consumer")

Item = WorkItem[PartitionState]
# Marks an item completed: (item, its report, whether the handler succeeded).
Complete = Callable[[Item, Report, bool], None]
# Ends the run with this error (faults.Faults.park: the first one wins).
Fail = Callable[[PyrallelError], None]

KEY_REPR_CHARS = 100  # a key's repr in log lines, at most (plus its length when cut)
ERROR_LOG_CHARS = 500  # the error's last line in log lines, at most


def bounded_repr(key: bytes | None, limit: int = KEY_REPR_CHARS) -> str:
    """repr(key), cut to `limit` characters (saying the key's length when cut); never builds
    the repr of a large key whole."""
    if key is None:
        return "None"
    text = repr(key[:limit])
    if len(key) <= limit and len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(key):,} bytes)"


def describe(record: Record, attempts: int, error: str) -> str:
    """`topic[partition]@offset (key ...) after N attempt(s): <error's last line>`."""
    line = last_line(error)
    if len(line) > ERROR_LOG_CHARS:
        line = f"{line[:ERROR_LOG_CHARS]}... ({len(line):,} characters)"
    return (
        f"{record.topic}[{record.partition}]@{record.offset} (key {bounded_repr(record.key)}) "
        f"after {attempts} attempt(s): {line}"
    )


class FailurePolicy:
    """Applies `config.on_failure`; counts `failed`, `skipped`, `dead_lettered` and, for dead
    letters acknowledged after a revoke, `fenced`."""

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
        # Failed records whose dead letter is not reported yet: they hold in-flight room.
        self.dead_lettering = 0

    def failed(self, item: Item, report: Report) -> None:
        record = item.record
        error = report.error or "unknown error"
        self._counters.failed += 1
        policy = self._config.on_failure
        if policy == "skip":
            log.warning("skipped %s", describe(record, report.attempts, error))
            self._counters.skipped += 1
            self._complete(item, report, False)
        elif policy == "dead_letter" and self._dead_letters is not None:
            self._dead_letter(self._dead_letters, item, report, error)
        else:
            self._fail(
                ProcessingError(
                    record.topic,
                    record.partition,
                    record.offset,
                    report.attempts,
                    error,
                    self._config.batch_size,
                )
            )

    def _dead_letter(self, sink: DeadLetterSink, item: Item, report: Report, error: str) -> None:
        record = item.record
        dlq_topic = self._config.dlq_topic or ""

        def delivered(cause: str | None, code: int | None = None) -> None:
            self.dead_lettering -= 1
            if cause is not None:
                where = (record.topic, record.partition, record.offset)
                self._fail(DeadLetterError(*where, dlq_topic, cause, code))
            elif item.owner.revoked:  # acknowledged after the revoke: the new owner redoes it
                self._counters.fenced += 1
            else:
                log.warning(
                    "dead-lettered to %r: %s", dlq_topic, describe(record, report.attempts, error)
                )
                self._counters.dead_lettered += 1
                self._complete(item, report, False)

        self.dead_lettering += 1
        queued = False
        try:
            sink.publish(record, error, report.attempts, delivered)
            queued = True
        except DeadLetterError as refused:  # refused at once: `delivered` never runs
            self._fail(refused)
        finally:
            if not queued:
                self.dead_lettering -= 1

    def poll(self) -> None:
        """Serve dead-letter acknowledgements that are due; never blocks."""
        if self._dead_letters is not None:
            self._dead_letters.poll()

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for dead letters still queued, then give up on the rest
        (each ends the run with DeadLetterError: its record was not committed) and release the
        dead-letter producer. Called once per run, after the consumer closed."""
        if self._dead_letters is not None:
            self._dead_letters.close(timeout)
