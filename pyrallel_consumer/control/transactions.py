"""Exactly once (transactional_id): outputs, dead letters and offsets in one transaction per
commit.

Kafka's read-process-write transactions (KIP-98, with the group fencing of KIP-447): a
transactional producer writes the outputs, and `send_offsets_to_transaction` puts the
consumer's offsets into the same transaction, so a downstream `read_committed` consumer sees a
record's outputs if and only if the group's commit passed the record. Here:

- `TransactionalProducer` is the library's producer (producer.py) with the run's
  transactional.id: `start` registers it (init_transactions, which fences an older instance
  with the same id and aborts what it left open); the first write after a commit begins the
  next transaction, so the outputs of the handler and the dead letters join whichever is open.
- `TransactionalCommitter` (transaction_commits.py) replaces the plain commit (same interface) at
  every commit point of the loop, the rebalance and the shutdown: it first waits for every
  delivery of the open transaction (so each record whose outputs are in it has completed and
  its offset is in the commit point: no output is committed without its record), then sends
  the commit points of *every* assigned partition (a transaction holds the outputs of all of
  them, so its offsets must cover all of them too) with the group's metadata, and commits.
- An abortable failure (the member was fenced by a newer generation after a rebalance, an
  output the broker refused inside the transaction, a commit that kept timing out): the
  transaction is aborted and `on_abort` runs (rebalance.Rebalancer.rewind): every assigned
  partition goes back to the offset the last committed transaction holds, with a new
  partition state, so work still in flight from the aborted one is fenced and its outputs are
  dropped, and its records are consumed and handled again. Revoked partitions whose commit
  it was commit nothing more (transaction_commits.py): their next owner redoes those records.
- A fatal one (a newer instance with the same transactional_id fenced this producer): the run
  ends with KafkaFatalError and nothing more is committed.

Ownership: the control thread, like the plain committer; delivery callbacks run inside
`flush`, `produce` and `poll`, on it too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaTopicPartition

from pyrallel_consumer.control.bounded_call import Hung, bounded
from pyrallel_consumer.control.kafka_errors import fatal_error
from pyrallel_consumer.control.output_sink import TRANSACTION_ABORTING
from pyrallel_consumer.control.producer import (
    Headers,
    LazyProducer,
    OnDelivery,
    Refused,
    described,
    kafka_error,
)
from pyrallel_consumer.errors import KafkaError as PyrallelKafkaError
from pyrallel_consumer.errors import KafkaFatalError
from pyrallel_consumer.kafka_settings import COMMIT_TIMEOUT_S

log = logging.getLogger("pyrallel_consumer")

# How many times a commit step that failed with a retriable error (a coordinator moving, a
# timeout) is tried again before the transaction is aborted and redone.
RETRIES = 3
# How much longer than its own timeout a transaction call may take before it counts as hung.
HANG_GRACE_S = 5.0


_ABORTING_TEXT = (
    "the open transaction failed on an earlier write: it is aborted at the next commit and "
    "its records are redone"
)


_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


class Aborted(Exception):
    """The transaction was aborted (its text says why); its records must be redone."""


class TransactionalProducer(LazyProducer):
    """The library's producer with `transactional_id` (module doc). `open`: a transaction is
    open (something was written since the last commit or abort)."""

    def __init__(
        self,
        config: dict[str, Any],
        transactional_id: str,
        error_cb: Callable[[KafkaError], None] | None = None,
    ) -> None:
        super().__init__(
            {**config, "transactional.id": transactional_id},
            "transactional output producer",
            "output",
            "output_producer_config",
            error_cb=error_cb,
        )
        self.transactional_id = transactional_id
        self.open = False
        self.failed = False  # a write of the open transaction failed: it must be aborted
        self._transaction = 0  # counts the transactions ended (committed or aborted)
        self._started = False  # init_transactions done
        self.hung = False  # a transaction call never returned (bounded_call.py): unusable

    def start(self) -> None:
        """Build the producer and register its transactional.id. Raises KafkaFatalError or
        pyrallel_consumer.errors.KafkaError (naming the cause and the fix) when it cannot be:
        the brokers refuse the transaction timeout or the id, or none answered in time."""
        if self._started:  # the committer and the output sink both start it
            return
        try:
            producer = self._built()
            self._call(lambda: producer.init_transactions(COMMIT_TIMEOUT_S), "init_transactions")
            self._started = True
        except Refused as exc:
            raise PyrallelKafkaError(exc.cause, exc.code, "") from exc
        except Hung as exc:
            raise hung_error(exc) from exc
        except KafkaException as exc:
            err = kafka_error(exc)
            code = err.code() if err is not None else None
            text = described(err) if err is not None else str(exc)
            hint = _START_HINTS.get(code, "") if code is not None else ""
            if code == KafkaError._TIMED_OUT:
                hint = (
                    f" (no transaction coordinator answered within {COMMIT_TIMEOUT_S:.0f} s: "
                    f"check that the brokers at bootstrap.servers="
                    f"{self.config.get('bootstrap.servers')} are reachable; they are "
                    "output_producer_config's, else kafka_config's)"
                )
            if err is not None and err.fatal():
                raise fatal_error(text + hint, code, err.name()) from exc
            raise PyrallelKafkaError(
                f"could not start transactions with transactional_id "
                f"{self.transactional_id!r}: {text}{hint}",
                code,
                _name(err),
                err is not None and err.retriable(),
            ) from exc

    def produce(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Headers | None,
        on_delivery: OnDelivery,
        partition: int | None = None,
    ) -> None:
        """`LazyProducer.produce`, inside the open transaction (begun here if none is). Once
        one write of a transaction failed, the transaction can only be aborted: later writes
        are refused at once, and later delivery errors reported, with TRANSACTION_ABORTING,
        so that only the first failure counts against its record."""
        if self.failed:
            raise Refused(_ABORTING_TEXT, TRANSACTION_ABORTING)

        delivered = _InTransaction(self, self._transaction, on_delivery)
        if not self.open:
            try:
                self._built().begin_transaction()
            except KafkaException as exc:
                err = kafka_error(exc)
                if err is not None and err.fatal() and self._error_cb is not None:
                    self._error_cb(err)  # fenced: the run ends at once
                raise Refused(
                    described(err) if err is not None else str(exc),
                    err.code() if err is not None else None,
                ) from exc
            self.open = True
        super().produce(topic, value, key, headers, delivered, partition)

    def commit(self, offsets: list[KafkaTopicPartition], group_metadata: object) -> None:
        """Commit the open transaction with `offsets` (begun here if only offsets moved).
        Raises Aborted when it was aborted instead (its records must be redone), KafkaException
        when the producer failed for good (a fatal error: fenced)."""
        producer = self._built()
        if self.failed:  # records of its writes were let go uncompleted: never commit it
            self.abort()
            raise Aborted("a write of the transaction failed")
        if not self.open:
            producer.begin_transaction()
            self.open = True
        try:
            if offsets:
                _retrying(
                    lambda: self._call(
                        lambda: producer.send_offsets_to_transaction(
                            offsets, group_metadata, COMMIT_TIMEOUT_S
                        ),
                        "send_offsets_to_transaction",
                    )
                )
            _retrying(
                lambda: self._call(
                    lambda: producer.commit_transaction(COMMIT_TIMEOUT_S), "commit_transaction"
                )
            )
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is not None and err.fatal():
                raise
            self.abort()
            raise Aborted(described(err) if err is not None else str(exc)) from exc
        self.open = self.failed = False
        self._transaction += 1

    def abort(self) -> None:
        """Abort the open transaction: what it wrote is discarded (outstanding writes are
        purged, their delivery callbacks report it). KafkaException when even that failed."""
        self._transaction += 1  # first: the purged writes may report during the abort
        producer = self._producer
        if producer is not None and self.open:
            self._call(lambda: producer.abort_transaction(COMMIT_TIMEOUT_S), "abort_transaction")
        self.open = self.failed = False

    def _call(self, call: Callable[[], object], what: str) -> None:
        """A transaction call, bounded (bounded_call.py); Hung marks this producer `hung`."""
        try:
            bounded(call, COMMIT_TIMEOUT_S + HANG_GRACE_S, self._producer, what)
        except Hung:
            self.hung = True
            raise

    def close(self, timeout: float) -> int:
        """Abort what is open (its records were not committed: the next owner redoes them),
        then `LazyProducer.close`. A producer with a call hung inside is left alone."""
        if self.hung:
            self._producer = None  # kept alive by bounded_call, never destroyed
            return 0
        try:
            self.abort()
        except (KafkaException, Hung) as exc:
            log.warning("could not abort the open transaction at close: %s", exc)
            if self.hung:
                self._producer = None
                return 0
        return super().close(timeout)


class _InTransaction:
    """`on_delivery` of a write into transaction number `transaction`: a failure is blamed on
    its write only when it is the first failure of the open transaction and not a purge
    (librdkafka purges what is outstanding when a transaction fails, and so does an abort);
    the others are reported as TRANSACTION_ABORTING. Any failure dooms the transaction. A
    slotted object rather than a closure (output_sink._Delivery says why)."""

    __slots__ = ("_on_delivery", "_producer", "_transaction")

    def __init__(
        self, producer: TransactionalProducer, transaction: int, on_delivery: OnDelivery
    ) -> None:
        self._producer = producer
        self._transaction = transaction
        self._on_delivery = on_delivery

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            producer = self._producer
            current = self._transaction == producer._transaction
            if producer.failed or not current or err.code() in _PURGED:
                err = KafkaError(TRANSACTION_ABORTING, _ABORTING_TEXT)
            if current:
                producer.failed = True
        self._on_delivery(err, msg)


def _retrying(step: Callable[[], object]) -> None:
    """Run a transaction step, again up to RETRIES times while it fails retriably."""
    for attempt in range(RETRIES + 1):
        try:
            step()
            return
        except KafkaException as exc:
            err = kafka_error(exc)
            if err is None or not err.retriable() or err.txn_requires_abort():
                raise
            if attempt == RETRIES:
                raise
            log.info("transaction step failed (%s), retrying", described(err))


_START_HINTS = {
    KafkaError.INVALID_TRANSACTION_TIMEOUT: (
        " (transaction.timeout.ms is above the brokers' transaction.max.timeout.ms: lower it "
        "in output_producer_config, or raise the brokers' limit)"
    ),
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: (
        " (grant this principal Write on the TransactionalId resource)"
    ),
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: (
        " (grant this principal IdempotentWrite on the cluster)"
    ),
}


def hung_error(exc: Hung) -> KafkaFatalError:
    """The run's error when a transaction call hung: the producer cannot go on."""
    return KafkaFatalError(
        f"the transaction coordinator did not answer: {exc}, past the call's own "
        f"{COMMIT_TIMEOUT_S:.0f} s timeout (a broker restart can leave librdkafka waiting for "
        "good: librdkafka issues 5456 and 5511); the consumer stopped, committing nothing "
        "more: start it again (with the same transactional_id, which aborts what this one "
        "left open)",
        KafkaError._TIMED_OUT,
        "_TIMED_OUT",
    )


def _name(err: KafkaError | None) -> str:
    return err.name() if err is not None else ""
