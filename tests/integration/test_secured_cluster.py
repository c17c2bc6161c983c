"""A secured cluster: Apache Kafka with a SASL_PLAINTEXT listener (PLAIN, and OAUTHBEARER with
the broker's unsecured validator). The consumer authenticates, failed records go to the
dead-letter topic through the dead-letter producer, which must authenticate with the
consumer's settings (a password, or an `oauth_cb` token callback as cloud IAM signers use), and
the offsets are committed; no password shows in stats() or the config's repr."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from support import consume_all, send

from bench.broker import BrokerError, start_broker
from bench.broker.kafka import SaslListener
from pyrallel_consumer import ParallelConsumer, Record

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER, PASSWORD = "alice", "alice-s3cret-pw"
RECORDS = 200
TIMEOUT_S = 120.0


def fail_every_tenth(record: Record) -> None:
    if record.offset % 10 == 0:
        raise ValueError(f"offset {record.offset} is a tenth")


@pytest.fixture(scope="module")
def sasl_servers() -> Iterator[str]:
    try:
        handle = start_broker("kafka", sasl=SaslListener({USER: PASSWORD}))
    except BrokerError as exc:
        pytest.fail(f"could not start the Kafka broker with a SASL listener: {exc}")
    with handle:
        assert handle.sasl_bootstrap_servers is not None
        yield handle.sasl_bootstrap_servers


def secured(servers: str, password: str = PASSWORD, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "PLAIN",
        "sasl.username": USER,
        "sasl.password": password,
        **extra,
    }


class TokenSigner:
    """An `oauth_cb`: unsigned JWTs for USER, counting the clients that asked for one."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, config: str | None) -> tuple[str, float]:
        with self._lock:
            self.calls += 1
        now = time.time()

        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

        claims = {"sub": USER, "iat": int(now), "exp": int(now) + 3600}
        return f"{part({'alg': 'none'})}.{part(claims)}.", now + 3600


def create_topics(servers: str, *names: str) -> None:
    admin = AdminClient(secured(servers))
    futures = admin.create_topics([NewTopic(n, num_partitions=2) for n in names])
    for future in futures.values():
        future.result(timeout=30)


def produce(servers: str, topic: str, count: int) -> None:
    messages = ({"key": f"k{i % 7}".encode(), "value": f"v{i}".encode()} for i in range(count))
    send(Producer(secured(servers)), topic, messages)


def read_all(servers: str, topic: str, expected: int) -> list[Any]:
    consumer = Consumer(secured(servers, **{"group.id": "reader", "auto.offset.reset": "earliest"}))
    consumer.subscribe([topic])
    try:
        return consume_all(consumer, expected, exact=False)
    finally:
        consumer.close()


def test_wrong_password_is_refused(sasl_servers: str) -> None:
    """The listener really authenticates: without the right password nothing is served."""
    admin = AdminClient(secured(sasl_servers, password="wrong"))
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)


def plain_login(servers: str) -> dict[str, Any]:
    return secured(servers)


def token_login(servers: str, signer: TokenSigner) -> dict[str, Any]:
    return {
        "bootstrap.servers": servers,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": signer,
    }


@pytest.mark.parametrize("login", ["plain", "oauth_cb"])
def test_consume_dead_letter_and_commit_through_sasl(sasl_servers: str, login: str) -> None:
    topic, dlq, group = f"secured-{login}", f"secured-{login}-dlq", f"secured-{login}-group"
    create_topics(sasl_servers, topic, dlq)
    produce(sasl_servers, topic, RECORDS)
    signer = TokenSigner()
    credentials = (
        plain_login(sasl_servers) if login == "plain" else token_login(sasl_servers, signer)
    )
    config = {**credentials, "group.id": group, "auto.offset.reset": "earliest"}
    consumer = ParallelConsumer(
        config,
        topics=[topic],
        handler=fail_every_tenth,
        engine="async",
        dlq_topic=dlq,
        retries=0,
    )
    completed = consumer.run(until_end=True, timeout=TIMEOUT_S)
    stats = consumer.stats()
    assert completed == RECORDS
    assert stats["dead_lettered"] == stats["failed"] > 0
    assert PASSWORD not in repr(stats)
    assert PASSWORD not in repr(consumer.config)

    dead = read_all(sasl_servers, dlq, stats["dead_lettered"])
    assert len(dead) == stats["dead_lettered"]
    for message in dead:
        headers = dict(message.headers())
        assert int(headers["pyrallel.source.offset"]) % 10 == 0

    if login == "oauth_cb":
        assert signer.calls >= 2  # the consumer's client and the dead-letter producer's

    checker = Consumer(secured(sasl_servers, **{"group.id": group}))
    try:
        committed = checker.committed([TopicPartition(topic, p) for p in (0, 1)], timeout=10)
        ends = [checker.get_watermark_offsets(tp, timeout=10)[1] for tp in committed]
    finally:
        checker.close()
    assert [tp.offset for tp in committed] == ends
    assert sum(ends) == RECORDS
