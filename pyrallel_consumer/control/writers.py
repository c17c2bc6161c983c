"""What one run writes with and commits through: the output sink and the dead-letter sink
(at least once, each with its own idempotent producer) or, with transactional_id, the one
transactional producer both share and the committer that commits through its transactions.

Ownership: built by the control loop; used on the control thread only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control.client import KafkaClient
from pyrallel_consumer.control.commits import Committer
from pyrallel_consumer.control.dead_letter import DeadLetterPublisher, DeadLetterSink
from pyrallel_consumer.control.kafka_errors import KafkaErrors
from pyrallel_consumer.control.output_sink import OutputProducer, OutputSink, output_config
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.control.transaction_commits import TransactionalCommitter
from pyrallel_consumer.control.transactions import TransactionalProducer
from pyrallel_consumer.faults import Faults


class Committing(Protocol):
    """Commits what completed (commits.Committer; transaction_commits.TransactionalCommitter)."""

    def commit(self, states: Iterable[PartitionState], then: str) -> bool:
        """Commit the commit points of `states`; False when anything was refused. `then`
        completes the warning of a retriable refusal with what happens next."""

    def abort(self, reason: str) -> None:
        """Take back what is written but not committed, if anything can be (`reason`: why)."""


def transactional_producer(
    config: ConsumerConfig, on_error: KafkaErrors
) -> TransactionalProducer | None:
    """The producer of an exactly-once run (None without transactional_id); its
    client-level errors go where the consumer's go (a fenced producer ends the run), under
    its own name."""
    if config.transactional_id is None:
        return None
    producer_config = output_config(config.kafka_config, config.output_producer_config)
    return TransactionalProducer(
        producer_config,
        config.transactional_id,
        error_cb=on_error.for_client("transactional producer", producer_config),
    )


def default_outputs(
    config: ConsumerConfig,
    counters: Counters,
    on_error: KafkaErrors,
    producer: TransactionalProducer | None,
) -> OutputSink | None:
    """The output sink when outputs=True: with `producer` (exactly once), writing into its
    transactions, else with an idempotent producer of its own."""
    if not config.outputs:
        return None
    return OutputProducer(
        config.kafka_config,
        counters,
        config.output_producer_config,
        error_cb=on_error.for_client(
            "output producer", config.output_producer_config or config.kafka_config
        ),
        producer=producer,
    )


def default_dead_letters(
    config: ConsumerConfig, on_error: KafkaErrors, producer: TransactionalProducer | None
) -> DeadLetterSink | None:
    """The dead-letter sink under on_failure='dead_letter', sharing `producer` if given; its
    own producer's client-level errors go where the consumer's go, under its own name."""
    if config.on_failure == "dead_letter" and config.dlq_topic:
        return DeadLetterPublisher(
            config.dlq_topic,
            config.kafka_config,
            config.dlq_producer_config,
            producer=producer,
            error_cb=on_error.for_client(
                "dead-letter producer", config.dlq_producer_config or config.kafka_config
            ),
        )
    return None


def committer_for(
    client: KafkaClient,
    faults: Faults,
    tracker: Tracker,
    counters: Counters,
    producer: TransactionalProducer | None,
) -> Committer | TransactionalCommitter:
    """Plain commits, or with `producer` commits through its transactions (started here:
    raises what TransactionalProducer.start raises)."""
    if producer is None:
        return Committer(client, faults)
    producer.start()
    return TransactionalCommitter(client, faults, producer, tracker, counters)
