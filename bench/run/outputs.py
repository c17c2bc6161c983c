"""`--outputs` and `--exactly-once` in a run: the run's output topic, the consumer options that
turn outputs on, the handler that returns them, and the check of the output topic afterwards.

Each run (a mode on a workload, and each phase of it) writes to a topic of its own,
`<input topic>-out`, made like the input topic (the same partitions) with
`message.timestamp.type=LogAppendTime`: an output's timestamp is when the broker appended it,
so input timestamp -> output timestamp is the record's end-to-end time, the output's write
included. Once the consumer returned, the topic is read back from its start to its end with
`isolation.level=read_committed` (what a downstream reader sees: an exactly-once run's aborted
transactions are not) and checked (bench/measure/outputs.py).
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
)
from confluent_kafka import TopicPartition as KafkaTopicPartition

from bench.measure.outputs import OutputSample, check_outputs, parse_output_value
from bench.run.cluster import BenchSetupError, client_config
from bench.run.context import RunContext, RunSpec
from bench.run.phase import Phase
from bench.run.topics import reset_topic
from bench.workloads import Handler
from bench.workloads.outputs import with_outputs

OUTPUT_TOPIC_CONFIG = {"message.timestamp.type": "LogAppendTime"}
_CONSUME_BATCH = 1000
_CONSUME_WAIT_S = 0.2


def output_topic(spec: RunSpec) -> str:
    """The output topic of the run (or phase) `spec`: its input topic's name + `-out`."""
    return f"{spec.topic}-out"


def transactional_id(spec: RunSpec) -> str:
    """--exactly-once: the run's transactional id, `<group id>-tx` (the group id names the
    mode and carries the invocation's id: one id per run and mode); members add `-member-<i>`
    (bench/run/members.py), since each running member needs its own."""
    return f"{spec.group_id}-tx"


def consumer_options(spec: RunSpec, ctx: RunContext) -> dict[str, Any]:
    """The ParallelConsumer options of the run's output mode: none without --outputs,
    `outputs=True`, and with --exactly-once a `transactional_id`."""
    opts = ctx.options
    if not opts.outputs:
        return {}
    options: dict[str, Any] = {"outputs": True}
    if opts.exactly_once:
        options["transactional_id"] = transactional_id(spec)
    return options


def prepare(spec: RunSpec, ctx: RunContext, handler: Handler, timeout_s: float) -> Handler:
    """With --outputs: (re)create the run's output topic and return `handler` wrapped to return
    one output per record; without, `handler` itself."""
    opts = ctx.options
    if not opts.outputs:
        return handler
    reset_topic(
        ctx.bootstrap_servers,
        output_topic(spec),
        opts.num_partitions,
        timeout_s,
        config=OUTPUT_TOPIC_CONFIG,
    )
    return with_outputs(handler, spec.engine, output_topic(spec), batch=opts.batch_size is not None)


def read_outputs(
    bootstrap_servers: str, topic: str, timeout_s: float
) -> tuple[list[OutputSample], str]:
    """Every committed record of `topic`, start to end, as OutputSamples, and the topic's
    timestamp type (`log_append_time` or `create_time`; `none` when empty). BenchSetupError
    when the topic is not there, a fetch fails, or the end is not reached in `timeout_s`."""
    consumer = Consumer(
        client_config(
            bootstrap_servers,
            **{
                "group.id": f"{topic}-check",  # librdkafka wants one; nothing is committed
                "enable.auto.commit": False,
                "enable.partition.eof": True,  # the end of each partition is an event
                "isolation.level": "read_committed",
            },
        )
    )
    try:
        described = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if described is None or described.error is not None:
            raise BenchSetupError(
                f"output topic {topic} cannot be read: {described and described.error}"
            )
        pending = set(described.partitions)
        consumer.assign([KafkaTopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        samples: list[OutputSample] = []
        timestamp_type = "none"
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise BenchSetupError(
                    f"reading the output topic {topic} back did not reach the end of partitions "
                    f"{sorted(pending)} within {timeout_s:g} s"
                )
            for message in consumer.consume(_CONSUME_BATCH, _CONSUME_WAIT_S):
                error = message.error()
                if error is not None and error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                if error is not None:
                    raise BenchSetupError(f"reading the output topic {topic} failed: {error}")
                kind, timestamp = message.timestamp()
                timestamp_type = (
                    "log_append_time" if kind == TIMESTAMP_LOG_APPEND_TIME else "create_time"
                )
                parsed = parse_output_value(message.value())
                samples.append(
                    OutputSample(
                        message.partition() or 0,
                        message.offset() or 0,
                        message.key(),
                        timestamp,
                        parsed[0] if parsed else None,
                        parsed[1] if parsed else 0,
                    )
                )
        return samples, timestamp_type
    finally:
        consumer.close()


def output_figures(
    spec: RunSpec, ctx: RunContext, phase: Phase, timeout_s: float
) -> dict[str, Any] | None:
    """The result's `outputs` object (None without --outputs): the output mode, topic and
    transactional id, the output topic's counters (bench/measure/outputs.py) over the phase's
    measured records, the end-to-end latency input timestamp -> output timestamp (ms), and the
    library's own output and transaction counters. A topic that could not be read back counts
    every output missing, with the reason in `error`."""
    opts = ctx.options
    if not opts.outputs:
        return None
    delivered = phase.delivered
    figures: dict[str, Any] = {
        "mode": opts.output_mode,
        "topic": output_topic(spec),
        "transactional_id": transactional_id(spec) if opts.exactly_once else None,
        "error": None if delivered else "no delivery report of the input records to check against",
    }
    expected = delivered.sent_at_by_record().keys() if delivered is not None else set()
    try:
        samples, timestamp_type = read_outputs(ctx.bootstrap_servers, output_topic(spec), timeout_s)
    except (BenchSetupError, KafkaException) as exc:
        samples, timestamp_type = [], "none"
        figures["error"] = str(exc)
    check = check_outputs(samples, expected, opts.ordering)
    figures.update(
        {
            "timestamp_type": timestamp_type,
            "read": check.read,
            "missing": check.missing,
            "duplicates": check.duplicates,
            "ordering_violations": check.ordering_violations,
            "extra": check.extra,
            "e2e_p50_ms": check.e2e.p50_ms,
            "e2e_p95_ms": check.e2e.p95_ms,
            "e2e_p99_ms": check.e2e.p99_ms,
            "e2e_max_ms": check.e2e.max_ms,
        }
    )
    counters = (
        "outputs_acknowledged",
        "outputs_refused",
        "transactions_committed",
        "transactions_aborted",
    )
    figures.update({name: phase.engine_stats.get(name) for name in counters})
    return figures
