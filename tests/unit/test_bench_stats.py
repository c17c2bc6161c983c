"""Percentiles, latency summary, throughput and correctness checks against known data."""

from __future__ import annotations

import math

import pytest
from bench_completions import completion
from hypothesis import given
from hypothesis import strategies as st

from bench.measure.stats import (
    CompletionSample,
    check_correctness,
    handling_times,
    ordering_violations,
    percentile,
    sojourn_times,
    summarize_latencies,
    throughput,
)


def test_percentile_matches_linear_interpolation() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0) == 1
    assert percentile(values, 100) == 100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile(values, 101)


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), min_size=1, max_size=200),
    st.floats(min_value=0, max_value=100),
)
def test_percentile_stays_within_the_data(values: list[float], q: float) -> None:
    ordered = sorted(values)
    assert ordered[0] <= percentile(ordered, q) <= ordered[-1]


def test_latency_summary_in_milliseconds() -> None:
    summary = summarize_latencies([0.001 * v for v in range(1, 101)])
    assert summary.count == 100
    assert summary.avg_ms == pytest.approx(50.5)
    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p99_ms == pytest.approx(99.01)
    assert summary.max_ms == pytest.approx(100)
    assert math.isnan(summarize_latencies([]).avg_ms)


def test_sojourn_counts_the_backlog_wait_and_handling_does_not() -> None:
    # received at 1.0, handed to the engine at 3.0 (two seconds in the backlog), done at 3.005
    sample = completion(0, 0, b"k", 1.0, 3.0, 3.005)
    assert sojourn_times([sample]) == [pytest.approx(2.005)]
    assert handling_times([sample]) == [pytest.approx(0.005)]
    assert summarize_latencies(handling_times([sample])).p99_ms == pytest.approx(5.0)


def _s(
    partition: int, offset: int, key: bytes | None, done: float, received: float = 0.0
) -> CompletionSample:
    return completion(partition, offset, key, received, received, done)


def test_throughput_spans_first_receipt_to_last_completion() -> None:
    samples = [_s(0, i, b"k", done=1.0 + i * 0.5, received=1.0) for i in range(5)]
    rate = throughput(samples)
    assert rate.processing_time_s == pytest.approx(2.0)
    assert rate.throughput_tps == pytest.approx(2.5)
    assert math.isnan(throughput([]).throughput_tps)


def test_ordering_violations_per_key_and_per_partition() -> None:
    samples = [
        _s(0, 0, b"a", 1),
        _s(0, 2, b"a", 2),
        _s(0, 1, b"b", 3),
        _s(0, 4, b"a", 4),
        _s(0, 3, b"a", 5),
    ]  # offset 3 of key a completes after 4: one violation
    assert ordering_violations(samples, "key") == 1
    # per partition: 1 after 2, and 3 after 4
    assert ordering_violations(samples, "partition") == 2
    assert ordering_violations(samples, "unordered") == 0
    # different partitions never conflict
    assert ordering_violations([_s(0, 5, b"a", 1), _s(1, 1, b"a", 2)], "key") == 0


def test_duplicates_and_missing() -> None:
    samples = [_s(0, 0, b"a", 1), _s(0, 1, b"a", 2), _s(0, 1, b"a", 3)]
    result = check_correctness(samples, expected=4, ordering="key")
    assert result.duplicates == 1
    assert result.unique_processed == 2
    assert result.missing == 2
    assert result.ordering_violations == 0


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5)), min_size=1, max_size=60))
def test_in_order_completions_never_violate(pairs: list[tuple[int, int]]) -> None:
    # Offsets assigned in production order; completing in offset order per partition is legal.
    samples = [
        _s(partition, offset, b"k%d" % key, done=float(offset))
        for offset, (partition, key) in enumerate(pairs)
    ]
    assert ordering_violations(samples, "key") == 0
    assert ordering_violations(samples, "partition") == 0
    reversed_samples = [_s(s.partition, s.offset, s.key, done=-s.completed_at) for s in samples]
    per_partition: dict[int, list[CompletionSample]] = {}
    for s in samples:
        per_partition.setdefault(s.partition, []).append(s)
    expected = sum(len(group) - 1 for group in per_partition.values())
    assert ordering_violations(reversed_samples, "partition") == expected
