"""Exceptions raised by ParallelConsumer.run(); each carries the context needed to act on it."""

from __future__ import annotations


class PyrallelError(Exception):
    """Base class of this library's errors."""


class ProcessingError(PyrallelError):
    """A record failed every attempt and `on_failure='stop'`: the consumer stopped without
    committing it, so it is consumed again on the next start."""

    def __init__(self, topic: str, partition: int, offset: int, attempts: int, error: str) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.attempts = attempts
        self.error = error
        last_line = error.strip().splitlines()[-1] if error.strip() else "unknown error"
        super().__init__(
            f"handler failed {attempts} time(s) on {topic}[{partition}]@{offset}: {last_line} "
            "(offset not committed; set dlq_topic=... or on_failure='skip' to continue past "
            "failing records)"
        )


class DeadLetterError(PyrallelError):
    """A record could not be written to the dead-letter topic, so it was not committed."""


class WorkerError(PyrallelError):
    """The process engine cannot keep its worker processes running: they die with no record to
    blame (at startup, in worker_init, killed while idle) more times in a row than the restart
    budget allows, or the main module starts a consumer at import time. The message names the
    exit code or signal and the fix."""


class KafkaFatalError(PyrallelError):
    """librdkafka reported a fatal error; the consumer cannot continue."""
