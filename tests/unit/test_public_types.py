"""The public API's types: partitions are `TopicPartition`s in the rebalance callbacks and in
`stats()`, `on_revoke` beside `on_assign`, and the JSON form keeps the "topic[partition]" keys."""

from __future__ import annotations

from typing import Any

import pytest
from control_fakes import TOPIC, harness, run

from pyrallel_consumer import CallbackError, TopicPartition, stats_json
from pyrallel_consumer.control.loop import ControlLoop


def _loop_with(h: Any, **callbacks: Any) -> ControlLoop:
    return ControlLoop(
        h.config, h.engine, clock=h.clock, client_factory=h.client.factory, **callbacks
    )


def test_rebalance_callbacks_get_topic_partitions_and_revoke_comes_after_the_last_commit() -> None:
    h = harness()
    seen: list[tuple[str, list[TopicPartition], Any]] = []
    loop = _loop_with(
        h,
        on_assign=lambda partitions: seen.append(("assign", partitions, None)),
        on_revoke=lambda partitions: seen.append(("revoke", partitions, h.client.last_commit(1))),
    )
    h.client.produce(0, 5)
    h.client.produce(1, 5)
    h.client.rebalance("assign", 0, 1)
    h.script.when(lambda: loop.stats()["completed"] == 10, lambda: h.client.rebalance("revoke", 1))
    h.script.when(lambda: len(seen) == 2, loop.request_stop)
    assert loop.run(max_records=None, timeout=600) == 10
    assert seen[0] == ("assign", [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)], None)
    kind, partitions, commit_at_revoke = seen[1]
    assert (kind, partitions) == ("revoke", [TopicPartition(TOPIC, 1)])
    assert commit_at_revoke == (5, ""), "on_revoke runs once the revoked partition committed"
    # The end of run() revokes the rest.
    assert seen[2][:2] == ("revoke", [TopicPartition(TOPIC, 0)])


def test_lost_partitions_are_told_to_on_revoke_too() -> None:
    h = harness()
    revoked: list[list[TopicPartition]] = []
    loop = _loop_with(h, on_revoke=revoked.append)
    h.client.produce(0, 3)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: loop.stats()["completed"] == 3, lambda: h.client.rebalance("lost", 0))
    h.script.when(lambda: bool(revoked), loop.request_stop)
    loop.run(max_records=None, timeout=600)
    assert revoked == [[TopicPartition(TOPIC, 0)]]


def test_on_revoke_raising_ends_the_run_with_callback_error() -> None:
    def on_revoke(partitions: list[TopicPartition]) -> None:
        raise KeyError("no such tenant")

    h = harness()
    loop = _loop_with(h, on_revoke=on_revoke)
    h.client.produce(0, 3)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: loop.stats()["completed"] == 3, lambda: h.client.rebalance("revoke", 0))
    with pytest.raises(CallbackError, match="on_revoke raised KeyError") as raised:
        loop.run(max_records=None, timeout=600)
    assert raised.value.callback == "on_revoke"


def test_stats_key_partitions_by_topic_partition_and_the_json_form_by_name() -> None:
    h = harness()
    h.client.produce(0, 4)
    h.client.rebalance("assign", 0)
    h.script.when(lambda: h.loop.stats()["completed"] == 4, h.loop.request_stop)
    run(h)
    stats = h.loop.stats()
    where = TopicPartition(TOPIC, 0)
    assert list(stats["partitions"]) == [where]
    assert stats["partitions"][where]["committed"] == 4
    assert (where.topic, where.partition, str(where)) == (TOPIC, 0, f"{TOPIC}[0]")
    as_json = stats_json(stats)
    assert list(as_json["partitions"]) == [f"{TOPIC}[0]"]
    assert as_json["partitions"][f"{TOPIC}[0]"]["committed"] == 4
    assert as_json["completed"] == 4
