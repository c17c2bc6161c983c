"""The control plane's isolation and backpressure, without a broker (fakes: control_fakes.py).

- The per-lane cap: a stuck key (or partition) holds at most `max_in_flight_per_lane` slots;
  its other records wait in the backlog while the other lanes complete; unordered records are
  never capped.
- Backpressure: at capacity the loop takes only what there is room for and holds before
  pausing, so a short stall pauses nothing; a long one pauses, and the partitions resume only
  at the resume mark (half the backlog free), not at the first free slot.
"""

from __future__ import annotations

from control_fakes import harness, run, tp

from pyrallel_consumer.control.backpressure import HOLD_S

# ---- the per-lane cap --------------------------------------------------------------------------


def test_a_stuck_key_holds_at_most_its_cap_while_the_other_keys_complete() -> None:
    stuck = [True]
    h = harness(
        hold=lambda item: stuck[0] and item.record.key == b"k0",
        ordering="key",
        max_in_flight=10,
        max_in_flight_per_lane=2,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 100, keys=5)  # k0: offsets 0, 5, 10, ... 95
    client.rebalance("assign", 0)
    while_stuck: list[dict[str, object]] = []

    def unstick() -> None:
        while_stuck.append({**h.loop.stats(), "held": sorted(engine.held)})
        stuck[0] = False
        engine.release(*sorted(engine.held))

    script.when(lambda: h.loop.counters.completed == 80, unstick)
    script.when(lambda: client.last_commit() == (100, ""), h.loop.request_stop)

    assert run(h) == 100
    stats = while_stuck[0]
    assert stats["held"] == [0, 5]  # the cap: two records of k0 in the engine, no more
    assert stats["in_flight"] == 2
    assert stats["backlog"] == 18  # the rest of k0 waits in the backlog
    handled_k0 = [offset for _, offset in engine.handled if offset % 5 == 0]
    assert handled_k0 == list(range(0, 100, 5))  # in offset order


def test_a_stuck_partition_holds_at_most_its_cap_under_partition_order() -> None:
    h = harness(
        hold=lambda item: item.record.partition == 0,
        ordering="partition",
        max_in_flight=10,
        max_in_flight_per_lane=3,
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 20)
    client.produce(1, 50)
    client.rebalance("assign", 0, 1)
    seen: list[dict[str, object]] = []

    def check() -> None:
        seen.append({**h.loop.stats(), "held": sorted(engine.held)})
        h.loop.request_stop()

    script.when(lambda: client.last_commit(1) == (50, ""), check)

    assert run(h) == 50
    assert seen[0]["held"] == [0, 1, 2]
    assert seen[0]["in_flight"] == 3


def test_unordered_records_are_not_capped() -> None:
    h = harness(
        hold=lambda item: True, ordering="unordered", max_in_flight=10, max_in_flight_per_lane=1
    )
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 30)
    client.rebalance("assign", 0)
    script.when(lambda: len(engine.held) == 10, h.loop.request_stop)

    run(h, timeout=5.0)
    assert len(engine.held) == 10  # one key, but no lane: the whole window is in use


def test_the_default_cap_is_a_tenth_of_max_in_flight_between_1_and_32() -> None:
    caps = [harness(max_in_flight=n).config.max_in_flight_per_lane for n in (1, 10, 100, 320, 1000)]
    assert caps == [1, 1, 10, 32, 32]


# ---- backpressure ----------------------------------------------------------------------------


def test_a_short_stall_at_capacity_takes_only_what_fits_and_pauses_nothing() -> None:
    records, capacity = 20, 2 + 3
    h = harness(hold=lambda item: True, max_in_flight=2, backlog_size=3, poll_batch_size=10)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, records)
    client.rebalance("assign", 0)
    held_counts: list[int] = []

    def release(offset: int) -> None:
        stats = h.loop.stats()
        held_counts.append(stats["in_flight"] + stats["backlog"])
        engine.release(offset)

    def at_capacity_or_drained() -> bool:
        stats = h.loop.stats()
        return stats["in_flight"] + stats["backlog"] == capacity or stats["received"] == records

    for offset in range(records):  # one record at a time, each time the loop is full
        script.when(
            lambda offset=offset: offset in engine.held and at_capacity_or_drained(),
            lambda offset=offset: release(offset),
        )
    pauses_before_stop: list[object] = []

    def stop() -> None:
        pauses_before_stop.extend(client.pause_calls)  # shutdown pauses everything after
        h.loop.request_stop()

    script.when(lambda: client.last_commit() == (records, ""), stop)

    assert run(h) == records
    assert pauses_before_stop == []  # room came back within HOLD_S every time
    assert max(held_counts) == capacity  # never received beyond it
    assert held_counts[:3] == [capacity] * 3


def test_a_long_stall_pauses_after_the_hold_and_resumes_only_at_the_resume_mark() -> None:
    # Capacity 10, resume mark 2 + 8 // 2 = 6.
    holding = [True]
    h = harness(hold=lambda item: holding[0], max_in_flight=2, backlog_size=8)
    client, script, engine = h.client, h.script, h.engine
    client.produce(0, 40)
    client.rebalance("assign", 0)
    full_at: list[float] = []
    paused_at: list[float] = []
    states: list[tuple[int, bool]] = []  # (in-flight + backlog, paused) before each release

    def held() -> int:
        stats = h.loop.stats()
        return int(stats["in_flight"]) + int(stats["backlog"])

    def release_next() -> None:
        states.append((held(), tp(0) in client.paused))
        if tp(0) in client.paused:
            engine.release(min(engine.held))
        else:  # resumed: let everything go
            holding[0] = False
            engine.release(*sorted(engine.held))

    script.when(lambda: held() == 10, lambda: full_at.append(h.clock()))
    script.when(lambda: tp(0) in client.paused, lambda: paused_at.append(h.clock()))
    for done in range(5):  # one release per loop turn, each after the last one was applied
        script.when(lambda done=done: h.loop.counters.completed == done, release_next)
    script.when(lambda: client.last_commit() == (40, ""), h.loop.request_stop)

    assert run(h) == 40
    assert paused_at[0] - full_at[0] >= HOLD_S - 1e-6  # the fake clock sums 0.02 s steps
    assert states == [(10, True), (9, True), (8, True), (7, True), (6, False)]
    kinds = [kind for kind, _ in client.pause_calls]
    assert kinds[:2] == ["pause", "resume"]
