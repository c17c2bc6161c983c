"""Exceptions raised by ParallelConsumer.run(); each carries the context needed to act on it.

Every failure the library detects, on any thread or in any callback, ends the run through one
path (`faults.Faults`): the run stops taking records, drains or cancels its work as the error
allows, and `run()` raises the first error as one of the classes below, with the original
exception as `__cause__` where there is one.

    PyrallelError
    ├── ProcessingError    a record failed every attempt, on_failure='stop'
    ├── HandlerExit        a handler raised SystemExit or KeyboardInterrupt
    ├── DeadLetterError    a dead letter could not be written
    ├── CallbackError      on_complete / on_assign raised
    ├── EngineError        an engine's own thread failed
    │   └── WorkerError    process workers cannot be kept running
    └── KafkaError         the Kafka client refused for good (`code`, `retriable`)
        ├── KafkaFatalError  librdkafka's fatal error (a fenced static member, ...)
        └── CommitError      the broker refused a commit for good
"""

from __future__ import annotations

from collections.abc import Sequence


def last_line(text: str | None) -> str:
    """The last line of a traceback text: the exception and its message."""
    stripped = (text or "").strip()
    return stripped.splitlines()[-1] if stripped else "unknown error"


# How a handler written for one record fails when batch mode gives it a list: it reads a Record
# attribute (value, key, offset...) of the list.
_RECORD_HANDLER_FAILURE = "AttributeError: 'list' object has no attribute"


# How the library refuses what a handler returned (output.HandlerReturnError): the class name
# starts the traceback's last line, qualified by its module.
_RETURN_REFUSED = "pyrallel_consumer.output.HandlerReturnError:"


def handler_fault_hint(error: str | None, batch_size: int | None) -> str | None:
    """What to change when `error` (a traceback text) says the handler, not the record, is at
    fault, so every record fails the same way: the handler returned what nothing acts on
    (output.HandlerReturnError), or a handler written for one record got a list in batch mode
    (record_handler_hint). None otherwise. A ProcessingError gives it instead of the failure
    policies, which would only skip or dead-letter every record."""
    if last_line(error).startswith(_RETURN_REFUSED):
        return (
            "the handler's return value, not the record, is at fault: every record fails "
            "so; change the handler as the error says"
        )
    return record_handler_hint(error, batch_size)


def record_handler_hint(error: str | None, batch_size: int | None) -> str | None:
    """What to change when `error` (a traceback text) is how a handler written for one record
    fails in batch mode (`batch_size` set); None otherwise. The batch engine warns with it
    (engines/batching.py)."""
    if batch_size is None or not last_line(error).startswith(_RECORD_HANDLER_FAILURE):
        return None
    return (
        f"is the handler written for one record? With batch_size={batch_size} it takes a list "
        "of records: iterate over it (def handler(records: list[Record])), or leave batch_size "
        "unset to get one record per call"
    )


class PyrallelError(Exception):
    """Base class of this library's errors."""


class ProcessingError(PyrallelError):
    """A record failed every attempt and `on_failure='stop'`: the consumer stopped without
    committing it, so it is consumed again on the next start. `attempts` counts the handler
    calls that failed on it; in batch mode, every call whose list held it (its batch's
    attempts, then those of each piece of the bisection down to it alone)."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        attempts: int,
        error: str,
        batch_size: int | None = None,
    ) -> None:
        """`batch_size`: batch mode's, to name the fix when the handler looks written for one
        record (handler_fault_hint)."""
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempts = attempts
        self.error = error
        # A record whose handler succeeded can fail on its outputs (control/outputs.py).
        failure = last_line(error)
        refused = failure.startswith("OutputRefused")
        failed = "output refused" if refused else "handler failed"
        advice = handler_fault_hint(error, batch_size) or (
            "set dlq_topic=... or on_failure='skip' to continue past failing records"
        )
        # Batch mode counts every call whose list held the record (engines/batching.py); a
        # refused output counts the writes of the record's outputs, never bisected.
        calls = (
            " (its batch's calls, then bisected to it alone)"
            if batch_size is not None and not refused
            else ""
        )
        super().__init__(
            f"{failed} {attempts} time(s){calls} on {topic}[{partition}]@{offset}: "
            f"{failure} (offset not committed; {advice})"
        )


class HandlerExit(PyrallelError):
    """A handler raised SystemExit or KeyboardInterrupt (`exception`: its type name): the run
    stopped cleanly (drain, commit) without committing that record, which is handled again on
    the next start. `error` is the handler's traceback text."""

    def __init__(self, topic: str, partition: int, offset: int, error: str) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.error = error
        self.exception = last_line(error).split(":", 1)[0]
        super().__init__(
            f"the handler raised {last_line(error)} on {topic}[{partition}]@{offset}: the run "
            "stopped cleanly and that record is not committed (raise an Exception instead to "
            "have it retried and given to on_failure)"
        )


class DeadLetterError(PyrallelError):
    """A record could not be written to the dead-letter topic, so it was not committed: the
    producer refused it (`produce()` raised: too large, queue full, bad settings) or the broker
    did not acknowledge it. `cause` is the producer's error text, `code` its Kafka error code
    (None when it had none)."""

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        dlq_topic: str,
        cause: str,
        code: int | None = None,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.dlq_topic = dlq_topic
        self.cause = cause
        self.code = code
        super().__init__(
            f"could not write {topic}[{partition}]@{offset} to dead-letter topic {dlq_topic!r}: "
            f"{cause}; the record stays uncommitted and is handled again on the next start"
        )


class CallbackError(PyrallelError):
    """A callback given to ParallelConsumer (`callback`: 'on_complete', 'on_assign', ...)
    raised; the original exception is `__cause__`. The run stopped cleanly (drain, commit)."""

    def __init__(self, callback: str, cause: BaseException) -> None:
        self.callback = callback
        super().__init__(
            f"{callback} raised {type(cause).__name__}: {cause} (callbacks run on the "
            "consumer's control thread; an exception there stops the run)"
        )
        self.__cause__ = cause


class EngineError(PyrallelError):
    """An engine's own thread failed unexpectedly (not the handler: its errors are failed
    attempts). The records it held are not committed; the original exception is `__cause__`
    when there is one."""


class WorkerError(EngineError):
    """The process engine cannot keep its worker processes running: they die with no record to
    blame (at startup, in worker_init, killed while idle) more times in a row than the restart
    budget allows, a reader thread failed, or the main module starts a consumer at import
    time. The message names the exit code, signal or exception, and the fix."""


class KafkaError(PyrallelError):
    """The Kafka client reported an error that will not pass by retrying. `code` is the Kafka
    (librdkafka) error code, `name` its symbolic name (e.g. 'GROUP_AUTHORIZATION_FAILED'),
    `retriable` librdkafka's own verdict."""

    def __init__(self, message: str, code: int | None, name: str, retriable: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.name = name
        self.retriable = retriable


class KafkaFatalError(KafkaError):
    """librdkafka reported a fatal error (e.g. a static member fenced by another one with the
    same group.instance.id, or an idempotence failure): the client cannot go on. The run
    stopped at once, handled nothing more and committed nothing more."""


class CommitError(KafkaError):
    """The broker refused a commit for good (group or topic authorization, metadata larger
    than offset.metadata.max.bytes, an unknown or fenced member, ...). `partitions` lists
    (topic, partition) whose commit failed with that error; the group keeps what it had."""

    def __init__(
        self,
        message: str,
        code: int | None,
        name: str,
        partitions: Sequence[tuple[str, int]],
        retriable: bool = False,
    ) -> None:
        super().__init__(message, code, name, retriable)
        self.partitions = list(partitions)
