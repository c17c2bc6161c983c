"""Open-loop latency without a broker: the paced schedule and its warm-up under a fake clock,
the warm-up records dropped from a phase, the floor's arithmetic, the options, the table and
the client settings recorded in the results."""

from __future__ import annotations

import math

import pytest
from bench_completions import completion

from bench.cli import parse_args
from bench.measure import pacing
from bench.measure.stats import CompletionSample
from bench.output.scenario_tables import scenario_tables
from bench.output.table import WIDTH
from bench.run.floor import floor_latency
from bench.run.phase import Phase
from bench.run.produce import Delivered, ProducePlan
from bench.run.scenario_summary import client_settings


class FakeClock:
    """time.monotonic and time.sleep of a clock that moves only when slept on or told to."""

    def __init__(self) -> None:
        self.now = 100.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _paced(rate: float, total: int, send_cost_s: float = 0.0) -> tuple[list[float], float]:
    """Send times (seconds after the start) of pace() under a fake clock, and its lateness."""
    fake = FakeClock()
    start = fake.now
    sent_at: list[float] = []

    def send(index: int) -> None:
        assert index == len(sent_at)
        sent_at.append(fake.now - start)
        fake.sleep(send_cost_s)

    behind = pacing.pace(rate, total, send, lambda: None, fake.clock, fake.sleep)
    return sent_at, behind


def test_pace_sends_each_record_when_due() -> None:
    sent_at, behind = _paced(rate=1000, total=10)
    assert sent_at == pytest.approx([i / 1000 for i in range(10)])
    assert behind == pytest.approx(0.0)


def test_pace_reports_how_late_a_slow_producer_fell() -> None:
    # Each send takes 3 ms at 1000/s. Record 0 ends at 3 ms, then the loop sleeps its minimum
    # tick (1 ms): at 4 ms records 1-3 are all due and go out in one burst (at 4, 7, 10 ms);
    # the burst started 3 ms after record 1 was due.
    sent_at, behind = _paced(rate=1000, total=4, send_cost_s=0.003)
    assert sent_at == pytest.approx([0.0, 0.004, 0.007, 0.010])
    assert behind == pytest.approx(0.003)


def test_warmup_is_the_records_due_before_it_ends() -> None:
    assert pacing.warmup_records(5000, 3.0) == 15_000
    assert pacing.warmup_records(1000, 0.0025) == 3  # due at 0, 1 and 2 ms
    assert pacing.warmup_records(1000, 0.0) == 0
    # Under the fake clock, exactly the warm-up records are sent before the warm-up ends.
    rate, warmup_s = 1000.0, 0.0095
    warmup = pacing.warmup_records(rate, warmup_s)
    sent_at, _ = _paced(rate, warmup + 50)
    assert sum(1 for t in sent_at if t < warmup_s) == warmup == 10


def test_plan_numbers_warmup_records_after_the_measured_ones() -> None:
    plan = ProducePlan("b", "t", num_messages=5, num_keys=2, seq_base=10, warmup_messages=3)
    assert plan.total_messages == 8
    assert [plan.seq(i) for i in range(8)] == [15, 16, 17, 10, 11, 12, 13, 14]
    assert ProducePlan("b", "t", 5, 2).seq(0) == 0


def _sample(partition: int, offset: int, received: float, done: float) -> CompletionSample:
    return completion(partition, offset, b"k", received, received, done)


def _delivered_with_warmup() -> Delivered:
    # Five records on partition 0 (offsets 0-4), sent 1 s apart; the first two are warm-up.
    return Delivered(
        [0, 1, 0, 1, 0],
        partitions=[0] * 5,
        offsets=[0, 1, 2, 3, 4],
        sent_at=[0.0, 1.0, 2.0, 3.0, 4.0],
        warmup=2,
    )


def test_phase_drops_the_warmup_records_from_every_figure() -> None:
    samples = [_sample(0, o, o + 0.5, o + 0.6) for o in range(5)]
    phase = Phase(0.0, [samples], [[0.1]], delivered=_delivered_with_warmup()).finish()
    assert [s.offset for s in phase.samples] == [2, 3, 4]
    assert phase.warmup_records == 2
    assert phase.delivered is not None
    assert phase.delivered.sent_at_by_record() == {(0, 2): 2.0, (0, 3): 3.0, (0, 4): 4.0}
    assert phase.delivered.key_indices == [0, 1, 0]


def test_floor_is_send_to_receipt_of_the_measured_records() -> None:
    # Offset 3 was never received: it is left out, not counted as zero.
    received = {(0, 0): 0.9, (0, 1): 1.9, (0, 2): 2.01, (0, 4): 4.03}
    floor = floor_latency(received, _delivered_with_warmup())
    assert floor.records == 2
    assert floor.e2e.p50_ms == pytest.approx(20.0)
    assert floor.e2e.max_ms == pytest.approx(30.0)
    assert floor.error is None


def test_warmup_and_floor_options() -> None:
    opts = parse_args(["--rate", "5000"])
    assert opts.warmup_s == 3.0 and opts.floor is True
    opts = parse_args(["--rate", "5000", "--warmup-s", "0", "--no-floor"])
    assert opts.warmup_s == 0.0 and opts.floor is False
    with pytest.raises(SystemExit):
        parse_args(["--warmup-s", "-1"])


def test_open_loop_table_shows_the_floor_and_the_consumers_share() -> None:
    result = {
        "run_type": "async",
        "workload": "sleep",
        "rate_tps": 5000.0,
        "members": 1,
        "open_loop": {
            "offered_tps": 5000.2,
            "achieved_tps": 4990.0,
            "kept_up": True,
            "e2e_p50_ms": 9.14,
            "e2e_p99_ms": 38.5,
            "floor_e2e_p50_ms": 1.46,
            "floor_e2e_p99_ms": 11.3,
            "consumer_p99_ms": 6.4,
            "warmup_sec": 3.0,
        },
    }
    (narrow,) = scenario_tables([result])
    assert "Fl. p99" in narrow and "Own p99" in narrow and "warm-up" in narrow
    assert "11.3" in narrow and "6.40" in narrow and "1.46" not in narrow  # floor p50: --wide
    assert max(len(line) for line in narrow.splitlines()) <= WIDTH
    (wide,) = scenario_tables([result], wide=True)
    assert "Floor p99" in wide and "Warm-up s" in wide and " 1.5 " in wide  # floor p50


def test_client_settings_name_the_given_value_or_the_default() -> None:
    settings = client_settings(parse_args(["--kafka-config", "fetch.wait.max.ms=10"]))
    assert settings["producer_open_loop"]["linger.ms"] == 1
    assert settings["producer_open_loop"]["acks"] == "all"
    assert settings["producer_backlog"]["linger.ms"] == 5
    assert settings["consumer"]["fetch.wait.max.ms"] == "10"
    assert settings["consumer"]["fetch.min.bytes"] == "1 (librdkafka default)"
    assert not math.isnan(float(settings["producer_open_loop"]["batch.num.messages"]))
