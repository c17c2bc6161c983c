"""librdkafka's log lines and client errors through `logging`, repeats rate-limited (issue 10,
fault 9). The loop's error callback is driven through the fake client; no broker."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from control_fakes import FakeClock, harness, run

from pyrallel_consumer.config import build_config
from pyrallel_consumer.control.client import ALL_BROKERS_DOWN, TRANSPORT
from pyrallel_consumer.control.kafka_errors import KafkaErrors
from pyrallel_consumer.control.kafka_log import (
    REPEAT_INTERVAL_S,
    LibrdkafkaLog,
    RepeatLimiter,
    with_logger,
)
from pyrallel_consumer.control.stats import Counters
from pyrallel_consumer.control.writers import default_dead_letters, default_outputs
from pyrallel_consumer.faults import Faults

CONNECT_FAILED = (
    "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: "
    "Connection refused (after {ms}ms in state CONNECT)"
)


@dataclass
class FakeError:
    _code: int
    _text: str

    def fatal(self) -> bool:
        return False

    def code(self) -> int:
        return self._code

    def str(self) -> str:
        return self._text


def messages(caplog: pytest.LogCaptureFixture, logger: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger]


def test_the_limiter_admits_a_key_once_per_interval_and_counts_what_it_suppressed() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(10.0, clock)
    assert limiter.admit("a") == 0
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    assert limiter.admit("b") == 0  # another line is not a repeat
    clock.advance(10.0)
    assert limiter.admit("a") == 3


def test_librdkafka_lines_are_logged_once_per_interval_whatever_their_timings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyrallel_consumer.kafka")
    clock = FakeClock()
    router = LibrdkafkaLog(RepeatLimiter(REPEAT_INTERVAL_S, clock))
    for ms in range(30):  # a second of reconnect attempts, each "after N ms"
        router.log(
            logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", CONNECT_FAILED.format(ms=ms)
        )
    clock.advance(REPEAT_INTERVAL_S)
    router.log(
        logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", CONNECT_FAILED.format(ms=1)
    )

    said = messages(caplog, "pyrallel_consumer.kafka")
    assert len(said) == 2, said
    assert said[0].startswith("librdkafka: FAIL [rdkafka#consumer-1] [thrd:127.0.0.1:9")
    assert said[1].endswith(f"(29 repeats suppressed in the last {REPEAT_INTERVAL_S:.0f} s)")


GETPID = (
    "[thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: Broker: "
    "Coordinator load in progress: retrying"
)


def test_a_line_librdkafka_retries_by_itself_is_info_once_and_a_warning_when_it_lasts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first dead letter on a fresh broker logs GETPID ... retrying once: the coordinator
    was still loading. Not worth a warning unless it comes back after the repeat interval."""
    caplog.set_level(logging.INFO, logger="pyrallel_consumer.kafka")
    clock = FakeClock()
    router = LibrdkafkaLog(RepeatLimiter(REPEAT_INTERVAL_S, clock))
    for _ in range(3):
        router.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-2", GETPID)
    clock.advance(REPEAT_INTERVAL_S)
    router.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-2", GETPID)
    router.log(logging.WARNING, "%s [%s] %s", "FAIL", "rdkafka#producer-2", "[thrd:main]: down")

    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in said] == [logging.INFO, logging.WARNING, logging.WARNING]
    assert said[0][1].endswith("Coordinator load in progress: retrying")
    assert said[1][1].endswith(f"(2 repeats suppressed in the last {REPEAT_INTERVAL_S:.0f} s)")


def test_every_client_gets_the_router_unless_the_user_gave_a_logger() -> None:
    assert isinstance(with_logger({"bootstrap.servers": "x"})["logger"], LibrdkafkaLog)
    own = logging.getLogger("mine")
    assert with_logger({"bootstrap.servers": "x", "logger": own})["logger"] is own


def test_a_dead_broker_is_reported_once_per_interval_and_connection_errors_not_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="pyrallel_consumer")
    h = harness()
    client, script = h.client, h.script

    def broker_down(times: int) -> None:
        assert client.on_error is not None
        for _ in range(times):
            client.on_error(FakeError(TRANSPORT, CONNECT_FAILED.format(ms=0)))
            client.on_error(FakeError(ALL_BROKERS_DOWN, "1/1 brokers are down"))

    start = h.clock()
    script.when(lambda: True, lambda: broker_down(30))
    script.when(lambda: h.clock() >= start + REPEAT_INTERVAL_S, lambda: broker_down(1))
    script.when(lambda: True, h.loop.request_stop)

    assert run(h) == 0
    warned = [
        r.getMessage()
        for r in caplog.records
        if r.name == "pyrallel_consumer" and r.levelno >= logging.WARNING
    ]
    assert len(warned) == 2, warned
    assert "1/1 brokers are down (bootstrap.servers=fake:9092)" in warned[0]
    assert "29 repeats suppressed" in warned[1]


def test_the_limiter_stays_bounded_over_many_distinct_lines_and_still_counts_repeats() -> None:
    # Lines that differ in ways the volatile pattern does not know must not pile up forever.
    clock = FakeClock()
    limiter = RepeatLimiter(10.0, clock, max_keys=100)
    for n in range(10_000):
        assert limiter.admit(f"line {n}") == 0
        clock.advance(0.01)
        assert len(limiter._seen) <= 100
    # Once their interval passed, lines with nothing suppressed are forgotten altogether.
    clock.advance(10.0)
    assert limiter.admit("another line") == 0
    assert len(limiter._seen) == 1
    # A key that is repeated still has its repeats suppressed and counted, however many other
    # lines come and go in between (within the cap).
    assert limiter.admit("a") == 0
    for n in range(50):
        assert limiter.admit("a") is None
        assert limiter.admit(f"other {n}") == 0
    clock.advance(10.0)
    assert limiter.admit("a") == 50


def test_the_limiter_evicts_the_key_logged_longest_ago_beyond_its_cap() -> None:
    clock = FakeClock()
    limiter = RepeatLimiter(10.0, clock, max_keys=2)
    assert [limiter.admit(key) for key in ("a", "b", "c")] == [0, 0, 0]
    assert limiter.admit("a") == 0  # evicted: logged again, not suppressed
    assert limiter.admit("c") is None  # still remembered


def test_each_producer_reports_its_errors_under_its_own_name_and_servers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unreachable output broker was reported as the consumer's bootstrap.servers being
    down, with the consumer's consequence: each client now names itself, its servers and
    what waits for it."""
    made: list[tuple[str, str]] = []

    class Recording(KafkaErrors):
        def for_client(self, client: str, kafka_config: Mapping[str, Any]) -> KafkaErrors:
            made.append((client, kafka_config["bootstrap.servers"]))
            return super().for_client(client, kafka_config)

    config = build_config(
        {"bootstrap.servers": "in:1", "group.id": "g"},
        topics=["t"],
        outputs=True,
        output_producer_config={"bootstrap.servers": "out:1"},
        dlq_topic="dlq",
    )
    errors = Recording(config.kafka_config, Faults(lambda: None), FakeClock())
    default_outputs(config, Counters(), errors, None)
    default_dead_letters(config, errors, None)
    assert made == [("output producer", "out:1"), ("dead-letter producer", "in:1")]

    caplog.set_level(logging.WARNING, logger="pyrallel_consumer")
    errors.for_client("output producer", {"bootstrap.servers": "out:1"})(
        FakeError(ALL_BROKERS_DOWN, "1/1 brokers are down")
    )
    errors(FakeError(ALL_BROKERS_DOWN, "1/1 brokers are down"))  # not a repeat of the other
    said = messages(caplog, "pyrallel_consumer")
    assert said[0].startswith(
        "kafka output producer: 1/1 brokers are down (bootstrap.servers=out:1)"
    )
    assert said[0].endswith("records stay in flight until their outputs are acknowledged")
    assert said[1].startswith("kafka consumer: 1/1 brokers are down (bootstrap.servers=in:1)")
