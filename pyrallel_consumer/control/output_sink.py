"""Where the handler's outputs are written: the `OutputSink` interface and its at-least-once
implementation, `OutputProducer` (also the exactly-once one, with a transactional producer).

A sink takes the outputs of one *unit* (one record's, or one batch's in batch mode), in order,
and answers once for the whole unit: every output acknowledged, or the first refusal. What a
refusal means for the records is decided by the caller (outputs.py); the sink only writes and
counts.

`OutputProducer` writes with an idempotent producer (acks=all; control/producer.py builds it when
the run starts, from the consumer's settings or `output_producer_config`). Why the order of a
key's outputs holds: the control thread produces a unit's outputs in the order the handler
returned them, and units in the order their reports arrive, which for one lane is the order
its records ran (engines report a record before releasing its lane); librdkafka keeps one
queue per partition, sends it in that order, and with idempotence its own retries (a broker
restarting, a timeout) are resent with sequence numbers the broker uses to reject duplicates
and out-of-order batches, so what reaches a partition keeps the produce order. A refused output
breaks that for its record only: the record is redone, so its outputs land again after those of
the key's later records already produced (at least once: the first copies that were
acknowledged stay).

Exactly once (transactional_id) keeps this class and hands it the transactional producer
(transactions.py): every write joins the open transaction, and an output answered
acknowledged is in it, committed or aborted with it.

Ownership: the control thread calls `write`, `poll` and `close`; delivery callbacks run inside
them, on that thread too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

from pyrallel_consumer.control.producer import LazyProducer, Refused, described, producer_config
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.topic_limits import BATCH_OVERHEAD_BYTES, TopicLimits
from pyrallel_consumer.errors import KafkaError as PyrallelKafkaError
from pyrallel_consumer.output import Output

log = logging.getLogger("pyrallel_consumer")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why output number `index` (0-based) of a unit was not written: `cause` names the error
    and the fix, `code` is the Kafka error code (None when there is none)."""

    index: int
    output: Output
    cause: str
    code: int | None


OnWritten = Callable[[Refusal | None], None]

# The code of a refusal that is not its output's fault (exactly once): another write failed the
# open transaction, which is aborted at the next commit, and every record of it redone.
TRANSACTION_ABORTING: int = KafkaError._STATE


class OutputSink(Protocol):
    """Writes the handler's outputs (module doc)."""

    def write(self, outputs: Sequence[Output], on_written: OnWritten) -> None:
        """Write one unit's outputs, in order. `on_written` runs exactly once, inside this call
        or a later `poll` or `close`, after every output of the unit had its answer: with None
        when all were acknowledged, else with the first refusal (outputs after one refused at
        once are not written). Never raises for a refused output."""

    def start(self) -> None:
        """Build what writing needs, once the run starts. Raises KafkaError when it cannot be
        built."""

    def poll(self) -> None:
        """Serve the answers that are due; never blocks."""

    def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the answers still due, give up on the rest (each
        unit's `on_written` runs with a refusal) and release what `write` built."""


def output_config(
    kafka_config: Mapping[str, Any], explicit: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The output producer's settings (producer.producer_config), acks=all unless given."""
    config = producer_config(kafka_config, explicit)
    config.setdefault("acks", "all")
    return config


class OutputProducer:
    """The at-least-once `OutputSink`: an idempotent producer (module doc). Counts
    `outputs_produced` (handed to the producer), `outputs_acknowledged` and `outputs_refused`
    (at once or by the broker) in `counters`: the difference is what waits for an answer."""

    def __init__(
        self,
        kafka_config: Mapping[str, Any],
        counters: Counters,
        explicit: Mapping[str, Any] | None = None,
        error_cb: Callable[[KafkaError], None] | None = None,
        producer: LazyProducer | None = None,
    ) -> None:
        """`producer`: the one to write with (exactly once: the transactional producer,
        transactions.py); None builds an idempotent one from the settings."""
        self._counters = counters
        if producer is None:
            producer = LazyProducer(
                output_config(kafka_config, explicit),
                "output producer",
                "output",
                "output_producer_config",
                error_cb=error_cb,
            )
        self._producer = producer
        self._limits = TopicLimits(producer.config)

    @property
    def unacknowledged(self) -> int:
        return self._producer.unacknowledged

    def write(self, outputs: Sequence[Output], on_written: OnWritten) -> None:
        counters = self._counters
        # Sizes first, so that a unit with one output over its topic's limit writes none (in a
        # transaction, the ones before it could not be taken back).
        limit_of = self._limits.limit
        for index, output in enumerate(outputs):
            limit = limit_of(output.topic)
            if limit is not None and output.size + BATCH_OVERHEAD_BYTES > limit:
                counters.outputs_refused += len(outputs)
                counters.outputs_produced += len(outputs)
                on_written(self._over_limit(index, output, limit))
                return
        # One output (the usual case) answers `on_written` itself; more share a _Unit.
        answer = on_written if len(outputs) == 1 else _Unit(len(outputs), on_written).answer
        produce = self._producer.produce
        for index, output in enumerate(outputs):
            counters.outputs_produced += 1  # handed to the producer: answered or pending
            try:
                produce(
                    output.topic,
                    output.value,
                    output.key,
                    output.headers,
                    _Delivery(self, answer, index, output),
                    output.partition,
                )
            except Refused as refused:
                counters.outputs_refused += 1
                # This one and the rest, which are never written.
                refusal = Refusal(index, output, refused.cause, refused.code)
                for _ in range(len(outputs) - index):
                    answer(refusal)
                return

    def _over_limit(self, index: int, output: Output, limit: int) -> Refusal:
        """The refusal of an output over its topic's max.message.bytes (topic_limits.py says
        why it is refused before it is produced)."""
        size = self._producer.size_text(output.key, output.value, output.headers)
        cause = (
            f"MSG_SIZE_TOO_LARGE: the output is {size}, over max.message.bytes={limit:,} of "
            f"topic {output.topic!r} (not produced, so it cannot fail the outputs batched with "
            "it): raise the topic's max.message.bytes, or make the output smaller"
        )
        return Refusal(index, output, cause, KafkaError.MSG_SIZE_TOO_LARGE)

    def refusal(self, index: int, output: Output, err: KafkaError) -> Refusal:
        """The refusal of output `index` that the broker (or librdkafka) answered with `err`;
        counted."""
        self._counters.outputs_refused += 1
        if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
            size = self._producer.size_text(output.key, output.value, output.headers)
            cause = self._producer.too_large(output.topic, size, by_broker=True)
            # The broker refuses a whole record batch: outputs within the limit fail when
            # their batch is over it (many of them, under a small topic limit).
            cause += (
                f"; if this output is below the topic's limit, its record batch was not: "
                f"set batch.size in output_producer_config below max.message.bytes of "
                f"topic {output.topic!r}"
            )
        else:
            cause = described(err)
        return Refusal(index, output, cause, err.code())

    def start(self) -> None:
        """Build the producer when the run starts, not at the first output: an idempotent
        producer's first acknowledgement waits for its producer id (LazyProducer.start), and
        at the first output that wait held every record in flight (0.6 of the throughput
        without outputs on a 20,000-record run)."""
        try:
            self._producer.start()
        except Refused as exc:
            raise PyrallelKafkaError(exc.cause, exc.code, "") from exc

    def poll(self) -> None:
        self._producer.poll()

    def close(self, timeout: float) -> None:
        self._producer.close(timeout)
        if self._producer.missing:
            log.warning(
                "output producer closed with %d reports missing: their records stay "
                "uncommitted and are redone by the next run",
                self._producer.missing,
            )


class _Delivery:
    """The delivery report of one output, for its unit's `answer`: None when acknowledged,
    else its Refusal. A slotted object, not a closure (a function, its cells and their tuple):
    the objects of the outputs waiting for the broker are what the cyclic GC keeps walking,
    and with closures its collections took about 8% of a run's time (sleep 5 ms, 100 keys,
    about 300 collections for 20,000 records)."""

    __slots__ = ("_answer", "_index", "_output", "_sink")

    def __init__(self, sink: OutputProducer, answer: OnWritten, index: int, output: Output):
        self._sink = sink
        self._answer = answer
        self._index = index
        self._output = output

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is None:
            self._sink._counters.outputs_acknowledged += 1
            self._answer(None)
        else:
            self._answer(self._sink.refusal(self._index, self._output, err))


class _Unit:
    """The answers one unit waits for; calls `on_written` once, after the last one."""

    __slots__ = ("_on_written", "_refusal", "_waiting")

    def __init__(self, outputs: int, on_written: OnWritten) -> None:
        self._waiting = outputs
        self._refusal: Refusal | None = None
        self._on_written = on_written

    def answer(self, refusal: Refusal | None) -> None:
        """The answer for one of the unit's outputs (None: acknowledged)."""
        if refusal is not None and self._refusal is None:
            self._refusal = refusal  # the first one: later refusals often share its cause
        self._waiting -= 1
        if self._waiting == 0:
            self._on_written(self._refusal)
