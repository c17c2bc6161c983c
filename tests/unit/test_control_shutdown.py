"""The shutdown drain over the fake client and engine: what it commits for partitions assigned
while it runs, whose records it consumes (to serve the rebalance callbacks) but drops."""

from __future__ import annotations

from control_fakes import Harness, harness, run, tp

COMMITTED_BEFORE = 2  # partition 1's position in the group before this member got it


def commits_of(h: Harness, partition: int) -> list[int]:
    return [o.offset for batch in h.client.commits for o in batch if o.partition == partition]


def test_the_drain_never_commits_past_records_it_dropped() -> None:
    # Offset 3 of partition 0 is in flight when the stop comes, so the shutdown drains; while it
    # does, partition 1 is assigned. Nothing pauses it, so the drain's consume calls fetch its
    # records 2..5 and drop them. Committing partition 1 at the consumer's position (6) would
    # lose them: the next owner must start at 2 again.
    h = harness(
        hold=lambda item: (item.record.partition, item.record.offset) == (0, 3),
        commit_interval_s=1.0,  # the drain commits on this interval after reading partition 1
        drain_timeout_s=300.0,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 5)
    client.produce(1, 6)
    client.committed_offsets[tp(1)] = (COMMITTED_BEFORE, "")
    client.rebalance("assign", 0)
    script.when(lambda: 3 in engine.held, h.loop.request_stop)
    script.when(lambda: tp(0) in client.paused, lambda: client.rebalance("assign", 1))
    drained_at: list[float] = []
    # Every record of partition 1 fetched (and dropped), and a few commit intervals passed.
    script.when(
        lambda: client.positions([tp(1)]) == [6],
        lambda: drained_at.append(h.clock()),
    )
    script.when(lambda: h.clock() > drained_at[0] + 5.0, lambda: engine.finish_late(3))

    assert run(h) == 5  # partition 0's records only
    assert all(partition == 0 for partition, _ in engine.handled)  # 1's were dropped
    assert drained_at and h.clock() > drained_at[0] + 5.0  # commit intervals passed meanwhile
    assert commits_of(h, 0) == [3, 5]  # at the start of the drain, then at its end
    assert set(commits_of(h, 1)) <= {COMMITTED_BEFORE}
    assert client.last_commit(1) == (COMMITTED_BEFORE, "")
    assert client.closed
