"""The unfriendly cases' logic without a broker: key distributions, their bounds, pacing math,
the stuck-key, open-loop and group figures, the default timeout, the new options."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import pytest
from bench_completions import completion

from bench.cli import parse_args
from bench.measure import bounds, pacing, scenarios
from bench.measure.stats import CompletionSample
from bench.output.scenario_tables import scenario_tables
from bench.run.members import add_batch_counts
from bench.workloads.keys import KeyDistribution, hottest_share
from bench.workloads.payload import make_value
from bench.workloads.stuck import STUCK_KEY, stuck_sync, value_marker, with_stuck_record


def test_uniform_keeps_round_robin() -> None:
    uniform = KeyDistribution.parse("uniform")
    assert uniform.key_indices(7, 3) == [0, 1, 2, 0, 1, 2, 0]
    assert uniform.counts(7, 3) == [3, 2, 2]


def test_zipf_counts_are_exact_and_follow_the_exponent() -> None:
    zipf = KeyDistribution.parse("zipf:1.0")
    counts = zipf.counts(10_000, 1000)
    assert sum(counts) == 10_000
    harmonic = math.fsum(1 / (i + 1) for i in range(1000))
    assert counts[0] == round(10_000 / harmonic)  # 1338
    assert counts[0] == pytest.approx(2 * counts[1], abs=1)
    indices = zipf.key_indices(10_000, 1000)
    assert Counter(indices) == {i: c for i, c in enumerate(counts) if c}
    # interleaved, not in blocks: the hot key is in both halves about equally
    half = Counter(indices[:5000])[0]
    assert abs(half - counts[0] / 2) <= 1


def test_hot_key_carries_its_fraction() -> None:
    hot = KeyDistribution.parse("hot:0.3")
    counts = hot.counts(1000, 11)
    assert counts[0] == 300 and set(counts[1:]) == {70}
    assert hottest_share(counts) == pytest.approx(0.3)
    assert str(hot) == "hot:0.3"


@pytest.mark.parametrize("text", ["zipf", "zipf:0", "hot:1", "hot:x", "gauss:1", "uniform:2"])
def test_bad_distributions_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        KeyDistribution.parse(text)


def _async_shape(concurrency: int = 1000) -> bounds.EngineShape:
    return bounds.EngineShape("async", 1000, concurrency, 1, 1)


def test_skew_bound_is_the_hottest_keys_work_when_it_dominates() -> None:
    # 10,000 records of 5 ms on 1000 keys, the hottest with 1338: even spread would allow
    # 10,000 / (10,000 x 5 ms / 1000) = 200,000/s; the hot key alone takes 1338 x 5 ms.
    common = {"ordering": "key", "num_keys": 1000, "num_partitions": 8, "num_messages": 10_000}
    bound = bounds.compute_bound(
        _async_shape(), service_time_s=0.005, chains=bounds.Chains(hottest=1338), **common
    )
    assert bound.bound_tps == pytest.approx(10_000 / (1338 * 0.005))
    even = bounds.compute_bound(
        _async_shape(), service_time_s=0.005, chains=bounds.Chains(hottest=10), **common
    )
    assert even.bound_tps == pytest.approx(1000 / 0.005)  # same as without chains


def test_stuck_record_lengthens_total_work_and_its_chain() -> None:
    chains = bounds.Chains(hottest=200, stuck_extra_s=10 - 0.005, stuck_chain=200)
    bound = bounds.compute_bound(
        _async_shape(),
        ordering="key",
        num_keys=100,
        num_partitions=8,
        num_messages=20_000,
        service_time_s=0.005,
        chains=chains,
    )
    # the stuck key's chain: 199 x 5 ms + 10 s
    assert bound.bound_tps == pytest.approx(20_000 / (199 * 0.005 + 10))
    baseline = bounds.compute_bound(
        bounds.EngineShape("baseline", 1000, 1, 1, 1),
        ordering="key",
        num_keys=100,
        num_partitions=8,
        num_messages=20_000,
        service_time_s=0.005,
        chains=chains,
    )
    assert baseline.bound_tps == pytest.approx(20_000 / (20_000 * 0.005 + 9.995))


def test_group_bound_helpers_and_default_timeout() -> None:
    assert bounds.effective_members(4, 2) == 2 and bounds.effective_members(2, 8) == 2
    assert bounds.chain_limit_tps(1000, 0.01, "key", bounds.Chains(hottest=100)) == 1000
    assert bounds.default_timeout_s(100_000, 200.0) == 3 * 500 + 30
    assert bounds.default_timeout_s(1000, 1000.0, join_allowance_s=5) == 8
    assert bounds.default_timeout_s(10, math.inf) == 90  # unknown bound: a minute + allowance


def test_pacing_schedule() -> None:
    assert pacing.due(0.0, 1000, 10) == 1  # the first record goes at once
    assert pacing.due(0.0049, 1000, 10) == 5
    assert pacing.due(1.0, 1000, 10) == 10  # never more than there are
    assert pacing.due(-1.0, 1000, 10) == 0
    assert pacing.send_time(250, 500.0) == pytest.approx(0.5)
    assert pacing.offered_rate([0.0, 0.25, 0.5, 0.75, 1.0]) == pytest.approx(4.0)
    assert math.isnan(pacing.offered_rate([1.0]))
    assert pacing.achieved_rate(100, 0.0, 2.0) == pytest.approx(50)
    assert pacing.kept_up(100.0, 96.0) is True
    assert pacing.kept_up(100.0, 80.0) is False
    assert pacing.kept_up(math.nan, 80.0) is None


def _sample(p: int, o: int, key: bytes, received: float, done: float) -> CompletionSample:
    return completion(p, o, key, received, received, done)


def test_stuck_window_counts_other_keys_while_they_still_had_work() -> None:
    samples = [_sample(0, 0, STUCK_KEY, 0.0, 10.0)]  # stuck for 10 s
    samples += [_sample(1, i, b"key-1", 0.0, 0.01 * (i + 1)) for i in range(100)]  # done at 1 s
    window = scenarios.stuck_window(samples, (0, 0), STUCK_KEY)
    assert window.window_s == pytest.approx(10.0)
    assert window.others == 100
    assert window.others_tps == pytest.approx(100.0)  # over 1 s, not the 10 s window
    assert scenarios.others_throughput(samples, STUCK_KEY) == pytest.approx(100.0)
    blocked = [_sample(0, 0, STUCK_KEY, 0.0, 10.0), _sample(0, 1, b"key-1", 0.0, 10.5)]
    assert scenarios.stuck_window(blocked, (0, 0), STUCK_KEY).others_tps == 0.0


def test_end_to_end_latency_runs_from_send_to_completion() -> None:
    samples = [_sample(0, i, b"k", 1.0 + i, 1.0 + i + 0.002 * (i + 1)) for i in range(3)]
    sent = {(0, i): 1.0 + i - 0.001 for i in range(3)}
    e2e = scenarios.end_to_end_ms(samples + samples[:1], sent)  # a redone record counts once
    assert e2e.count == 3
    assert e2e.p50_ms == pytest.approx(5.0) and e2e.max_ms == pytest.approx(7.0)


def test_member_shares_and_scaling_efficiency() -> None:
    one = [_sample(0, i, b"k", 0.0, 0.01 * (i + 1)) for i in range(10)]
    two = [_sample(1, i, b"k", 0.0, 0.02 * (i + 1)) for i in range(10)]
    shares = scenarios.member_shares([one, two])
    assert [s.records for s in shares] == [10, 10]
    assert shares[0].throughput_tps == pytest.approx(100)
    assert scenarios.scaling_efficiency(360.0, 200.0, 2) == pytest.approx(0.9)
    assert math.isnan(scenarios.scaling_efficiency(math.nan, 200.0, 2))


class _Record:
    def __init__(self, seq: int) -> None:
        self.value = make_value(seq)


def test_stuck_wrapper_sleeps_only_for_the_marked_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("bench.workloads.stuck.time.sleep", slept.append)
    handled: list[int] = []
    inner = handled.append
    marker = value_marker(7)
    stuck_sync(inner, marker, 2.5, _Record(7))  # type: ignore[arg-type]
    stuck_sync(inner, marker, 2.5, _Record(70))  # type: ignore[arg-type]
    assert slept == [2.5] and len(handled) == 1
    wrapped = with_stuck_record(inner, "baseline", 7, 2500)  # type: ignore[arg-type]
    assert wrapped.args[1:] == (marker, 2.5)  # type: ignore[attr-defined]


def test_stuck_batch_wrapper_waits_then_does_the_rest_of_the_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    slept: list[float] = []
    monkeypatch.setattr("bench.workloads.stuck.time.sleep", slept.append)
    calls: list[list[int]] = []

    def inner(records: list[_Record]) -> None:
        calls.append([int(r.value[:12]) for r in records])

    wrapped = with_stuck_record(inner, "baseline", 7, 2500, batch=True)
    wrapped([_Record(6), _Record(7), _Record(8)])
    wrapped([_Record(9)])
    wrapped([_Record(7)])  # the stuck record alone: no call of an empty batch
    assert slept == [2.5, 2.5]
    assert calls == [[6, 8], [9]]


def test_group_counts_every_members_batches() -> None:
    engine_stats: dict[str, Any] = {"engine": "async", "batches": {"batches": 3, "calls": 4}}
    add_batch_counts(engine_stats, {"batches": 2, "calls": 2})
    assert engine_stats == {"engine": "async", "batches": {"batches": 5, "calls": 6}}


def test_new_options_parse_and_reject_bad_values(capsys: pytest.CaptureFixture[str]) -> None:
    opts = parse_args(["--key-distribution", "ZIPF:1.0", "--rate", "100,200", "--members", "1,2"])
    assert opts.key_distribution == "zipf:1"
    assert opts.rates == [100.0, 200.0] and opts.members == (1, 2)
    assert opts.timeout_sec is None and opts.stuck_key_ms == 0
    assert parse_args([]).rates == [None]
    for argv in (["--rate", "0"], ["--members", "0"], ["--key-distribution", "hot:2"]):
        with pytest.raises(SystemExit):
            parse_args(argv)
    assert "--key-distribution" in capsys.readouterr().err


def test_scenario_tables_appear_only_for_options_used() -> None:
    plain = {"run_type": "async", "workload": "sleep", "key_distribution": "uniform"}
    assert scenario_tables([plain]) == []
    skewed = {**plain, "key_distribution": "zipf:1", "hottest_key_share": 0.134}
    looped = {**plain, "rate_tps": 500.0, "open_loop": {"offered_tps": 499.0, "kept_up": True}}
    tables = scenario_tables([skewed, looped])
    assert len(tables) == 2
    assert "13.4%" in tables[0] and "async @500/s" in tables[1]


def test_stuck_window_without_the_stuck_record_uses_the_run() -> None:
    samples = [_sample(1, i, b"key-1", 0.0, 0.01 * (i + 1)) for i in range(10)]
    window = scenarios.stuck_window(samples, (-1, -1), STUCK_KEY)
    assert window.others == 10 and window.window_s == pytest.approx(0.1)
