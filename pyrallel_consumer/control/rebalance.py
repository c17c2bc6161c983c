"""Rebalances: new partition states on assignment; on revocation, stop feeding, cancel what
has not started, commit what completed, give started work a bounded grace, commit again, then
fence late reports.

Commit first, then wait: the grace runs inside the rebalance callback, where nothing polls, so
it is capped below the session (control/session.py; so is the read of the committed offsets on
assignment) and preceded by a commit, so a grace that outlives the membership anyway loses
nothing that had completed before it.

Fencing: each assignment gets a new `PartitionState` and work items point at the state they
were received under. Once a state is `revoked`, reports on its items are fenced (counted, not
completed, not committed); the partition's next owner consumes those records again. Exactly
once, a revoke whose commit aborts its transaction ends there: the abort marks the revoked
states (transaction_commits.py), as their completions went with the transaction's outputs.

Ownership: the control thread. librdkafka runs these callbacks inside consume()/poll()/close().
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pyrallel_consumer.config import ConsumerConfig
from pyrallel_consumer.control import commits
from pyrallel_consumer.control.callbacks import Callback
from pyrallel_consumer.control.client import ClientError, CommittedOffset, KafkaClient
from pyrallel_consumer.control.partition_state import PartitionState
from pyrallel_consumer.control.reports import Clock, ReportHandler
from pyrallel_consumer.control.tracker import Tracker
from pyrallel_consumer.control.writers import Committing
from pyrallel_consumer.errors import KafkaError
from pyrallel_consumer.faults import Faults
from pyrallel_consumer.topic_partition import TopicPartition, listed

log = logging.getLogger("pyrallel_consumer")

# The user's rebalance callbacks: the partitions assigned, and those revoked or lost.
OnAssign = Callable[[list[TopicPartition]], None]
OnRevoke = Callable[[list[TopicPartition]], None]


class Rebalancer:
    """The three rebalance callbacks, over the tracker's partitions and work."""

    def __init__(
        self,
        config: ConsumerConfig,
        client: KafkaClient,
        committer: Committing,
        faults: Faults,
        tracker: Tracker,
        reports: ReportHandler,
        clock: Clock,
        on_assign: Callback[list[TopicPartition]] | None,
        on_revoke: Callback[list[TopicPartition]] | None,
        wait_bound_s: float,
    ) -> None:
        """`wait_bound_s`: how long a wait inside a callback may last (session.wait_bound_s)."""
        self._config = config
        self._client = client
        self._committer = committer
        self._faults = faults
        # The cluster's offset.metadata.max.bytes, read at the first assignment (metadata_limit).
        self._metadata_limit: int | None = None
        self._tracker = tracker
        self._reports = reports
        self._clock = clock
        self._on_assign = on_assign
        self._on_revoke = on_revoke
        self._epoch = 0
        self._wait_bound_s = wait_bound_s
        self._grace_s = min(config.revoke_grace_s, wait_bound_s)
        if self._grace_s < config.revoke_grace_s:
            log.info(
                "revoke_grace_s=%.1f is capped at %.1f s, half of session.timeout.ms or "
                "max.poll.interval.ms, so the commit after the grace still reaches the group",
                config.revoke_grace_s,
                self._grace_s,
            )
        self._read_timeout_s = min(commits.COMMITTED_TIMEOUT_S, wait_bound_s)
        # Set before close(): the shutdown drain already gave in-flight work its time, so the
        # revoke that close() runs commits without a second wait.
        self.closing = False

    def metadata_limit(self) -> int:
        """The cluster's offset.metadata.max.bytes, read from the brokers at the first
        assignment (within `wait_bound_s`, at most client.METADATA_LIMIT_TIMEOUT_S) rather than
        before joining: with no broker answering, that read would block for its whole timeout
        before the run's `timeout` or `idle_timeout` could end it."""
        if self._metadata_limit is None:
            self._metadata_limit = self._client.metadata_limit(self._wait_bound_s)
        return self._metadata_limit

    def assigned(self, partitions: list[TopicPartition]) -> None:
        """Read the group's commits of the new partitions and start tracking them. When they
        cannot be read, the run ends with KafkaError: consuming without them would redo what
        their metadata lists, or, worse, start from auto.offset.reset."""
        try:
            states = commits.read_commits(
                self._client,
                partitions,
                self._epoch + 1,
                self._read_timeout_s,
                self.metadata_limit(),
                self._config.poll_batch_size,
            )
        except ClientError as exc:
            self._faults.park(
                KafkaError(
                    f"could not read the committed offsets of {list(partitions)} within "
                    f"{self._read_timeout_s:.1f} s: {exc}; is the group coordinator reachable?",
                    exc.code,
                    exc.name,
                    exc.retriable,
                )
            )
            return
        self._epoch += len(states)
        self._tracker.attach(states)
        if partitions:  # a cooperative rebalance that adds nothing calls this with none
            log.info("assigned %s", listed(partitions))
        if self._on_assign is not None:
            self._on_assign.timed(list(partitions))

    def revoked(self, partitions: list[TopicPartition]) -> None:
        """Commit what completed, let started work finish within the grace (revoke_grace_s,
        capped by session.wait_bound_s), commit again, then fence reports still to come."""
        states = self._tracker.detach(partitions)
        if not states:
            return
        reports, tracker = self._reports, self._tracker
        failures = reports.failures

        def busy() -> bool:
            return failures.dead_lettering > 0 or tracker.busy_with(states)

        grace = 0.0 if self.closing else self._grace_s
        if grace > 0 and busy():
            self._committer.commit(states, "retried once the revoke grace ends")
            # Unless that commit's transaction aborted: it then gave these partitions up
            # (transaction_commits.py), nothing more of them can be committed, and waiting for
            # their work would only hold the rebalance.
            if not all(state.revoked for state in states):
                reports.settle(busy, self._clock() + grace)
        kept = commits.committed_text(states)
        self._committer.commit(
            states,
            f"the group keeps {kept}; whoever consumes these partitions next redoes the "
            "records completed after that",
        )
        for state in states:
            state.revoked = True  # reports still to come on these are fenced from now on
        log.info("revoked %s", listed((s.topic, s.partition) for s in states))
        self._tell_revoked(states)

    def rewind(self) -> None:
        """After an aborted transaction (exactly once, transactions.py): every assigned
        partition back to what the last committed transaction holds, as a revoke and an
        assignment of the same partitions without the callbacks: its work is fenced (what is
        still in flight ends unseen, its outputs dropped), a new state starts from its
        committed offset and metadata (or the first offset received under an assignment that
        found nothing committed) and the consumer seeks there. A partition that cannot be
        moved is left untracked, so nothing more of it is committed, and the run ends with
        KafkaError."""
        tracker = self._tracker
        keys = list(tracker.partitions)
        starts = {key: tracker.first_offsets.get(key) for key in keys}
        old = tracker.detach(keys)
        fresh, seeks = [], []
        for epoch, state in enumerate(old, start=self._epoch + 1):
            state.revoked = True
            key = TopicPartition(state.topic, state.partition)
            found = CommittedOffset(
                state.topic, state.partition, state.committed, state.committed_metadata
            )
            limit, batch = self.metadata_limit(), self._config.poll_batch_size
            fresh.append(commits.state_from(found, epoch, limit, batch))
            target = state.committed if state.committed is not None else starts[key]
            if target is not None:  # else nothing was received: the consumer did not move
                seeks.append((key, target))
        self._epoch += len(old)
        try:
            self._client.seek(seeks)
        except ClientError as exc:
            self._faults.park(
                KafkaError(
                    f"could not rewind {listed(key for key, _ in seeks)} after an aborted "
                    f"transaction: {exc}; the run ends without committing them further, and "
                    "the next owner redoes them from their committed offsets",
                    exc.code,
                    exc.name,
                    exc.retriable,
                )
            )
            return
        tracker.attach(fresh)  # one that found nothing committed notes its first offset again
        commits.set_paused(self._client, fresh, False)
        log.info("rewound %s to their committed offsets", listed(k for k, _ in seeks))

    def lost(self, partitions: list[TopicPartition]) -> None:
        """Partitions another member owns already: fence their work, commit nothing. Exactly
        once, the open transaction is aborted (and the partitions kept rewound): it holds
        outputs of the lost partitions' records, whose offsets it can no longer commit."""
        states = self._tracker.detach(partitions)
        for state in states:
            state.revoked = True
        self._committer.abort(f"partitions lost: {listed(partitions)}")
        log.warning("partitions lost: %s", listed(partitions))
        self._tell_revoked(states)

    def _tell_revoked(self, states: list[PartitionState]) -> None:
        """`on_revoke` with the partitions this member no longer owns, once their work is
        finished (within the grace) or fenced and their last commit was made or given up."""
        if self._on_revoke is not None and states:
            self._on_revoke.timed([TopicPartition(s.topic, s.partition) for s in states])
