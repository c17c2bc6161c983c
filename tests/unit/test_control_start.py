"""The start of a run over the fake client and engine: the control plane joins the consumer
group only once the engine can run records (Engine.wait_ready), so a member whose process
workers are still importing does not hold partitions idle; a stop while it waits ends the
run there."""

from __future__ import annotations

from control_fakes import harness, run


def test_the_group_is_joined_only_once_the_engine_is_ready() -> None:
    h = harness()
    client, engine = h.client, h.engine
    subscribed_at_each_wait: list[bool] = []

    def wait_ready(timeout: float) -> bool:
        subscribed_at_each_wait.append(client._callbacks is not None)
        return len(subscribed_at_each_wait) == 3  # ready at the third look

    engine.wait_ready = wait_ready  # type: ignore[method-assign]
    client.produce(0, 5)
    client.rebalance("assign", 0)
    h.script.when(lambda: len(engine.handled) == 5, h.loop.request_stop)

    assert run(h) == 5
    assert subscribed_at_each_wait == [False, False, False]


def test_a_stop_while_the_engine_starts_ends_the_run() -> None:
    h = harness()
    client = h.client
    waits: list[float] = []

    def wait_ready(timeout: float) -> bool:
        waits.append(timeout)
        if len(waits) == 2:
            h.loop.request_stop()
        return False  # never ready

    h.engine.wait_ready = wait_ready  # type: ignore[method-assign]
    client.produce(0, 5)

    assert run(h) == 0
    assert len(waits) == 2  # no wait after the stop
    assert h.engine.handled == [] and client.closed and h.engine.closed
