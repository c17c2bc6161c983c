"""The theoretical bound and efficiency (bench/README.md, "What is measured")."""

from __future__ import annotations

import math

import pytest

from bench.measure.bounds import (
    Chains,
    EngineShape,
    chain_limit_tps,
    compute_bound,
    efficiency,
    usable_concurrency,
)


def shape(
    engine: str,
    *,
    max_in_flight: int = 1000,
    concurrency: int = 256,
    workers: int = 2,
    worker_concurrency: int = 16,
) -> EngineShape:
    return EngineShape(engine, max_in_flight, concurrency, workers, worker_concurrency)


def bound(
    engine_shape: EngineShape,
    workload: str = "sleep",
    ordering: str = "key",
    keys: int = 100,
    partitions: int = 4,
    service: float = 0.005,
    cores: int = 2,
    gil_free: bool = True,
) -> tuple[int, float]:
    b = compute_bound(
        engine_shape,
        ordering=ordering,
        num_keys=keys,
        num_partitions=partitions,
        num_messages=2000,
        service_time_s=service,
        cpu_bound=workload == "cpu",
        cores=cores,
        releases_gil=gil_free,
    )
    return b.parallelism, b.bound_tps


def test_usable_concurrency_by_ordering() -> None:
    assert usable_concurrency("key", num_keys=100, num_partitions=4, num_messages=2000) == 100
    assert usable_concurrency("partition", num_keys=100, num_partitions=4, num_messages=2000) == 4
    assert (
        usable_concurrency("unordered", num_keys=100, num_partitions=4, num_messages=2000) == 2000
    )
    assert usable_concurrency("key", num_keys=100, num_partitions=4, num_messages=10) == 10
    with pytest.raises(ValueError):
        usable_concurrency("nope", num_keys=1, num_partitions=1, num_messages=1)


def test_sleep_bounds_per_engine() -> None:
    assert bound(shape("baseline")) == (1, pytest.approx(200))
    assert bound(shape("async")) == (100, pytest.approx(20_000))  # keys limit
    assert bound(shape("async"), ordering="partition") == (4, pytest.approx(800))
    assert bound(shape("async", max_in_flight=10), ordering="unordered") == (10, 2000)
    # process: 2 workers x 16 = 32 slots < 100 keys
    assert bound(shape("process")) == (32, pytest.approx(6400))


def test_cpu_bounds_use_cores() -> None:
    service = 0.001  # 1000 records/s on one core
    assert bound(shape("baseline"), "cpu", service=service) == (1, pytest.approx(1000))
    assert bound(shape("async"), "cpu", service=service) == (2, pytest.approx(2000))
    # a kernel holding the GIL runs on one core in threads, but not across processes
    assert bound(shape("async"), "cpu", service=service, gil_free=False)[0] == 1
    assert bound(shape("process", workers=4), "cpu", service=service)[0] == 2


def test_efficiency() -> None:
    assert efficiency(150, 200) == pytest.approx(0.75)
    assert math.isnan(efficiency(150, math.inf))
    assert math.isnan(efficiency(math.nan, 200))


def test_batch_bound_counts_calls_of_a_full_batch() -> None:
    def batched(engine_shape: EngineShape, ordering: str = "key") -> tuple[int, float]:
        b = compute_bound(
            engine_shape,
            ordering=ordering,
            num_keys=100,
            num_partitions=4,
            num_messages=20_000,
            service_time_s=0.010,  # one call of 100 records: 5 ms + 100 x 0.05 ms
            batch_size=100,
        )
        return b.parallelism, b.bound_tps

    # max_in_flight 1000 holds 10 batches of 100: 10 calls x 100 records / 10 ms.
    assert batched(shape("async")) == (10, pytest.approx(100_000))
    assert batched(shape("async", concurrency=2)) == (2, pytest.approx(20_000))
    assert batched(shape("async"), ordering="partition") == (4, pytest.approx(40_000))
    assert batched(shape("baseline")) == (1, pytest.approx(10_000))


def test_batch_bound_with_key_skew_and_a_stuck_record() -> None:
    """Module docstring of bench.measure.bounds: a chain of k records needs ceil(k / c) calls,
    c = min(b, max_in_flight_per_lane); the total work is records / b calls over the calls at
    once."""
    common = {"ordering": "key", "num_keys": 1000, "num_partitions": 8, "batch_size": 100}
    call = 0.010  # one call of 100 records
    # 10,000 records, hottest key 1338: with a lane cap of 100, 14 calls of its own (0.14 s)
    # beat the total work, 100 calls over 10 at once (0.1 s).
    wide = EngineShape("async", 1000, 256, 2, 16, lane_cap=100)
    skew = compute_bound(
        wide, num_messages=10_000, service_time_s=call, chains=Chains(1338), **common
    )
    assert skew.parallelism == 10
    assert skew.bound_tps == pytest.approx(10_000 / (14 * call))
    # The default lane cap (32 of 1000 in flight) holds at most 32 of its records per call.
    capped = compute_bound(
        shape("async"), num_messages=10_000, service_time_s=call, chains=Chains(1338), **common
    )
    assert capped.bound_tps == pytest.approx(10_000 / (42 * call))
    # The stuck record's chain of 200: 2 calls, one of them 9.99 s longer.
    stuck = Chains(hottest=200, stuck_extra_s=9.99, stuck_chain=200)
    late = compute_bound(wide, num_messages=20_000, service_time_s=call, chains=stuck, **common)
    assert late.bound_tps == pytest.approx(20_000 / (2 * call + 9.99))
    # An even spread gives the bound without chains: calls at once x b / call time.
    even = compute_bound(
        shape("async"), num_messages=10_000, service_time_s=call, chains=Chains(10), **common
    )
    assert even.bound_tps == pytest.approx(10 * 100 / call)
    # Unordered: a chain is one record, so one call.
    assert chain_limit_tps(1000, call, "key", Chains(250), 100, lane_cap=100) == pytest.approx(
        1000 / (3 * call)
    )
    assert chain_limit_tps(1000, call, "key", Chains(250), 100, lane_cap=32) == pytest.approx(
        1000 / (8 * call)
    )
    assert chain_limit_tps(1000, call, "unordered", Chains(250), batch_size=100) == (
        pytest.approx(1000 / call)
    )
