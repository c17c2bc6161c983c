"""Exactly once's committer: commits through the transactional producer's transactions
(transactions.py says how and why). `TransactionalCommitter` has the interface of
commits.Committer, so the loop, the rebalance and the shutdown commit through either alike.

Ownership: the control thread, like the plain committer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence

from confluent_kafka import KafkaException
from confluent_kafka import TopicPartition as KafkaTopicPartition

from pyrallel_consumer.control.bounded_call import Hung
from pyrallel_consumer.control.client import KafkaClient
from pyrallel_consumer.control.kafka_errors import fatal_error
from pyrallel_consumer.control.partition_state import CommitPoint, PartitionState
from pyrallel_consumer.control.producer import described, kafka_error
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.control.transactions import Aborted, TransactionalProducer, hung_error
from pyrallel_consumer.faults import Faults
from pyrallel_consumer.kafka_settings import COMMIT_TIMEOUT_S

log = logging.getLogger("pyrallel_consumer")


class TransactionalCommitter:
    """Commits through transactions (module doc); the interface of commits.Committer.
    `on_abort` runs after an aborted transaction (set by the loop to the rebalancer's
    rewind)."""

    def __init__(
        self,
        client: KafkaClient,
        faults: Faults,
        producer: TransactionalProducer,
        tracker: Tracker,
        counters: Counters,
    ) -> None:
        self._client = client
        self._faults = faults
        self._producer = producer
        self._tracker = tracker
        self._counters = counters
        self.on_abort: Callable[[], None] = lambda: None
        # Runs after the flush, before the commit points are taken: settles the outputs'
        # answers the flush served (set by the loop to Outputs.settle_answered).
        self.on_flushed: Callable[[], None] = lambda: None

    def commit(self, states: Iterable[PartitionState], then: str) -> bool:
        """Commit the open transaction with the commit points of every assigned partition
        and of `states` (revoked ones still to commit); False when it was not committed (it
        was aborted instead, and the partitions rewound; or a fatal error was parked). `then`
        is not needed: a transaction is never left half done for a later commit."""
        if self._faults.fatal:
            return False
        producer = self._producer
        tracked = {id(state): state for state in self._tracker.partitions.values()}
        # Revoked partitions still to commit (the rebalance's); one whose work a transaction
        # took down with it before (revoked already) commits nothing more.
        revoking = [s for s in states if id(s) not in tracked and not s.revoked]
        # Every delivery answered first: its record completes, so its offset is in the points.
        left = producer.flush(COMMIT_TIMEOUT_S)
        self.on_flushed()
        if left:
            reason = f"{left} writes still waited for the broker after {COMMIT_TIMEOUT_S:.0f} s"
            self.abort(reason, revoking)
            return False
        for state in revoking:
            tracked[id(state)] = state
        points: list[tuple[PartitionState, CommitPoint]] = []
        for state in tracked.values():
            point = state.commit_point()
            if point is not None:
                points.append((state, point))
        if not points and not producer.open:
            return True
        offsets = [
            KafkaTopicPartition(s.topic, s.partition, p.position, metadata=p.metadata)
            for s, p in points
        ]
        try:
            producer.commit(offsets, self._client.group_metadata())
        except Aborted as exc:
            self._aborted(str(exc), revoking)
            return False
        except KafkaException as exc:
            self._fatal(exc)
            return False
        except Hung as exc:
            self._faults.park(hung_error(exc))
            return False
        for state, point in points:
            state.mark_committed(point.position, point.metadata)
        self._counters.transactions_committed += 1
        return True

    def abort(self, reason: str, revoking: Sequence[PartitionState] = ()) -> None:
        """Abort the open transaction, if any, and rewind (`on_abort`): its writes can no
        longer be committed with their records' offsets (`reason` says why: partitions lost,
        writes that did not finish). `revoking`: revoked partitions whose commit this was
        (see `_aborted`)."""
        if self._faults.fatal or not self._producer.open:
            return
        try:
            self._producer.abort()
        except KafkaException as exc:
            self._fatal(exc)
            return
        except Hung as exc:
            self._faults.park(hung_error(exc))
            return
        self._aborted(reason, revoking)

    def _aborted(self, reason: str, revoking: Sequence[PartitionState]) -> None:
        """The transaction is gone, with the outputs of every record completed since the last
        committed one. The assigned partitions are rewound (`on_abort`). The revoked ones
        being committed (`revoking`) cannot be: they commit nothing more (marked revoked, so
        their reports still to come are fenced too), or their next commit would pass records
        whose outputs were just aborted. Whoever consumes them next redoes those records."""
        for state in revoking:
            state.revoked = True
        self._counters.transactions_aborted += 1
        log.warning(
            "transaction aborted (%s): every assigned partition goes back to the offsets of "
            "the last committed transaction and its records are redone",
            reason,
        )
        self.on_abort()

    def _fatal(self, exc: KafkaException) -> None:
        err = kafka_error(exc)
        text = described(err) if err is not None else str(exc)
        code, name = (err.code(), err.name()) if err is not None else (None, "")
        self._faults.park(fatal_error(text, code, name))
