"""Typos caught before connecting, and the dead-letter producer's settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pyrallel_consumer import ParallelConsumer
from pyrallel_consumer.control.dead_letter import producer_config
from pyrallel_consumer.kafka_settings import check

BASE = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}


def handle(record: object) -> None:
    """A handler that does nothing."""


def build(kafka: dict[str, Any] | None = None, **options: Any) -> ParallelConsumer:
    return ParallelConsumer(
        {**BASE, **(kafka or {})}, topics=["t"], handler=handle, engine="baseline", **options
    )


def test_unknown_librdkafka_setting_names_it_and_the_closest_one() -> None:
    with pytest.raises(
        ValueError,
        match=r"'sesion.timeout.ms' is not a librdkafka setting; "
        r"did you mean 'session.timeout.ms'\?",
    ):
        build({"sesion.timeout.ms": 6000})
    with pytest.raises(ValueError, match=r"'foo.bar' is not a librdkafka setting"):
        build({"foo.bar": 1})


def test_bad_value_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match=r"session\.timeout\.ms"):
        build({"session.timeout.ms": "soon"})


def os_threads() -> int:
    """Threads of this process, librdkafka's native ones included (Linux)."""
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_check_neither_connects_nor_leaves_threads() -> None:
    before = os_threads()
    # An unreachable bootstrap server and a token callback that must not be called.
    calls: list[object] = []
    check(
        {
            **BASE,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "oauth_cb": lambda config: calls.append(config),
        }
    )
    assert calls == []
    assert os_threads() <= before  # threads of earlier tests may still be ending


def test_unexpected_option_names_parallel_consumer_and_the_closest_option() -> None:
    with pytest.raises(TypeError) as info:
        build(foo=1)
    assert str(info.value).startswith("ParallelConsumer() got an unexpected option 'foo'")
    with pytest.raises(TypeError, match="did you mean 'max_in_flight'"):
        build(max_inflight=10)


def test_dead_letter_producer_gets_every_producer_setting_of_the_consumer() -> None:
    def token(config: str) -> tuple[str, float]:
        return "t", 0.0

    consumer = {
        **BASE,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": token,
        "enable.ssl.certificate.verification": False,
        "ssl.ca.location": "/ca.pem",
        "sasl.oauthbearer.config": "scope=x",
        "client.rack": "eu-1",
        "session.timeout.ms": 6000,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    }
    producer = producer_config(consumer)
    for name in (
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "enable.ssl.certificate.verification",
        "ssl.ca.location",
        "sasl.oauthbearer.config",
        "client.rack",
    ):
        assert producer[name] == consumer[name]
    assert producer["oauth_cb"] is token
    for consumer_only in ("group.id", "session.timeout.ms", "enable.auto.commit"):
        assert consumer_only not in producer
    assert producer["enable.idempotence"] is True


def test_explicit_dead_letter_producer_config_replaces_the_derived_one() -> None:
    explicit = {"bootstrap.servers": "other:9092", "acks": "all", "enable.idempotence": False}
    producer = producer_config({**BASE, "sasl.username": "u"}, explicit)
    assert producer["bootstrap.servers"] == "other:9092"
    assert "sasl.username" not in producer
    assert producer["enable.idempotence"] is False  # the user's word wins
    consumer = build(dlq_topic="dlq", dlq_producer_config=explicit)
    assert consumer.config.dlq_producer_config == explicit


def test_explicit_dead_letter_producer_config_is_checked() -> None:
    with pytest.raises(ValueError, match=r"dlq_producer_config: 'lingr\.ms'.*'linger\.ms'"):
        build(dlq_topic="dlq", dlq_producer_config={"bootstrap.servers": "b:1", "lingr.ms": 5})
    with pytest.raises(ValueError, match="set dlq_topic"):
        build(dlq_producer_config={"bootstrap.servers": "b:1"})
    with pytest.raises(ValueError, match=r"needs 'bootstrap\.servers'"):
        build(dlq_topic="dlq", dlq_producer_config={"acks": "all"})
