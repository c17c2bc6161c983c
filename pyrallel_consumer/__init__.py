"""Pyrallel Consumer: process Kafka records concurrently with per-key or per-partition order and
commits that lose nothing and redo little."""

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.consumer import ParallelConsumer
from pyrallel_consumer.errors import (
    CallbackError,
    CommitError,
    DeadLetterError,
    EngineError,
    HandlerExit,
    KafkaError,
    KafkaFatalError,
    ProcessingError,
    PyrallelError,
    WorkerError,
)
from pyrallel_consumer.record import Record

__all__ = [
    "CallbackError",
    "CommitError",
    "Completion",
    "DeadLetterError",
    "EngineError",
    "HandlerExit",
    "KafkaError",
    "KafkaFatalError",
    "ParallelConsumer",
    "ProcessingError",
    "PyrallelError",
    "Record",
    "WorkerError",
]
__version__ = "0.1.0"
