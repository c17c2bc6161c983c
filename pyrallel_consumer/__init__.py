"""Pyrallel Consumer: process Kafka records concurrently with per-key or per-partition order and
commits that lose nothing and redo little."""

from pyrallel_consumer.completion import Completion
from pyrallel_consumer.consumer import ParallelConsumer
from pyrallel_consumer.control.stats import BatchStats, PartitionStats, Stats, stats_json
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
from pyrallel_consumer.options import CodecName, EngineName, OnFailure, Ordering
from pyrallel_consumer.output import Output
from pyrallel_consumer.record import Record
from pyrallel_consumer.topic_partition import TopicPartition

__all__ = [
    "BatchStats",
    "CallbackError",
    "CodecName",
    "CommitError",
    "Completion",
    "DeadLetterError",
    "EngineError",
    "EngineName",
    "HandlerExit",
    "KafkaError",
    "KafkaFatalError",
    "OnFailure",
    "Ordering",
    "Output",
    "ParallelConsumer",
    "PartitionStats",
    "ProcessingError",
    "PyrallelError",
    "Record",
    "Stats",
    "TopicPartition",
    "WorkerError",
    "stats_json",
]
__version__ = "0.1.0"
