"""Shared pytest fixtures: real brokers, fresh topics, fast producing.

Fixtures (all brokers are real; the Kafka protocol is never faked):

``kafka_broker`` (session) -> BrokerInfo
    Apache Kafka 4 (KRaft, one node) started from its jars by ``bench.broker``. With the
    environment variable ``PYRALLEL_KAFKA_BOOTSTRAP=host:port`` an external cluster is used
    instead. If neither works the tests *fail* with the reason: they are never skipped.
``tansu_broker`` (session) -> BrokerInfo
    tansu (memory storage). See ``bench/broker/__init__.py`` for the Kafka features it lacks.
``broker`` (session, parametrized ``kafka`` / ``tansu``) -> BrokerInfo
    For contract tests that must hold on every broker.
``new_topic`` (function) -> ``new_topic(broker, partitions=1, *, prefix=None, config=None) -> str``
    Creates a uniquely named topic with ``partitions`` partitions and waits until every
    partition has a leader. The name contains the test name, for readable broker logs.
``produce`` (function, tests/integration/conftest.py) -> ``produce(broker, topic, count, *,
    keys=16, partition=None, value_size=None, headers=None) -> list[ProducedRecord]``
    Produces ``count`` records (key ``key-{i % keys}`` or None when ``keys`` is None, value
    ``value-{i}`` padded to ``value_size`` bytes), waits for every delivery report and returns
    them in production order with the partition and offset the broker assigned. The other
    helpers the integration tests share are in tests/integration/support.py.

``BrokerInfo.consumer_config(group_id, **overrides)`` gives a consumer config that suits the
broker (short session timeout, earliest reset, no auto commit); ``BrokerInfo.client_config()``
gives just the bootstrap servers. Keys with dots can be passed via ``**{"a.b": v}``.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from bench.broker import KIND_KAFKA, KIND_TANSU, BrokerError, broker_version, start_broker

EXTERNAL_KAFKA_ENV = "PYRALLEL_KAFKA_BOOTSTRAP"
TOPIC_READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class BrokerInfo:
    """What a test needs to know about a broker (started here or external)."""

    kind: str  # "kafka" or "tansu"; an external cluster counts as "kafka"
    bootstrap_servers: str
    version: str
    log_path: Path | None = None

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        return {"bootstrap.servers": self.bootstrap_servers, **overrides}

    def consumer_config(self, group_id: str, **overrides: Any) -> dict[str, Any]:
        # tansu holds every join for about session.timeout.ms / 2, so keep it short there;
        # the Kafka broker started by bench.broker accepts session timeouts down to 1 s.
        session_timeout_ms = 3000 if self.kind == KIND_TANSU else 6000
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": 1000,
        }
        config.update(overrides)
        return config


# Brokers used in this session, listed in the terminal summary (CI shows what ran where).
_USED_BROKERS: list[BrokerInfo] = []


def pytest_report_header(config: pytest.Config) -> list[str]:
    external = os.environ.get(EXTERNAL_KAFKA_ENV)
    kafka = f"external at {external}" if external else _version_or_reason(KIND_KAFKA)
    return [f"brokers: kafka={kafka}; tansu={_version_or_reason(KIND_TANSU)}"]


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _USED_BROKERS:
        return
    terminalreporter.section("brokers used")
    for info in _USED_BROKERS:
        terminalreporter.write_line(f"{info.kind}: {info.version} at {info.bootstrap_servers}")


def _version_or_reason(kind: str) -> str:
    try:
        return broker_version(kind)
    except (BrokerError, OSError) as exc:
        return f"unavailable ({exc})"


def _started_broker(kind: str) -> Iterator[BrokerInfo]:
    try:
        handle = start_broker(kind)
    except BrokerError as exc:
        # Fail, never skip: integration tests are part of CI and must not vanish silently.
        pytest.fail(f"could not start the {kind} broker: {exc}", pytrace=False)
    with handle:
        info = BrokerInfo(kind, handle.bootstrap_servers, handle.version, handle.log_path)
        _USED_BROKERS.append(info)
        yield info
        # Drop the admin client before the broker goes, or librdkafka logs reconnect errors.
        _ADMINS.pop(info.bootstrap_servers, None)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[BrokerInfo]:
    external = os.environ.get(EXTERNAL_KAFKA_ENV)
    if external:
        info = BrokerInfo(KIND_KAFKA, external, f"external ({EXTERNAL_KAFKA_ENV})")
        _wait_for_metadata(info, timeout=30.0)
        _USED_BROKERS.append(info)
        yield info
        _ADMINS.pop(info.bootstrap_servers, None)
        return
    yield from _started_broker(KIND_KAFKA)


@pytest.fixture(scope="session")
def tansu_broker() -> Iterator[BrokerInfo]:
    yield from _started_broker(KIND_TANSU)


@pytest.fixture(scope="session", params=[KIND_KAFKA, KIND_TANSU])
def broker(request: pytest.FixtureRequest) -> BrokerInfo:
    info: BrokerInfo = request.getfixturevalue(f"{request.param}_broker")
    return info


_ADMINS: dict[str, AdminClient] = {}


def admin_for(info: BrokerInfo) -> AdminClient:
    """One AdminClient per broker for the whole session (creating one costs a connection)."""
    if info.bootstrap_servers not in _ADMINS:
        _ADMINS[info.bootstrap_servers] = AdminClient(info.client_config())
    return _ADMINS[info.bootstrap_servers]


def _wait_for_metadata(info: BrokerInfo, timeout: float) -> None:
    try:
        admin_for(info).list_topics(timeout=timeout)
    except KafkaException as exc:
        pytest.fail(f"broker {info.bootstrap_servers} does not answer: {exc}", pytrace=False)


def create_topic(
    info: BrokerInfo,
    name: str,
    partitions: int = 1,
    config: dict[str, str] | None = None,
) -> str:
    """Create ``name`` and wait until all its partitions have a leader."""
    admin = admin_for(info)
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=TOPIC_READY_TIMEOUT_S,
    )
    futures[name].result(timeout=TOPIC_READY_TIMEOUT_S)
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while time.monotonic() < deadline:
        topic = admin.list_topics(topic=name, timeout=5.0).topics.get(name)
        if (
            topic is not None
            and topic.error is None
            and len(topic.partitions) == partitions
            and all(p.leader >= 0 for p in topic.partitions.values())
        ):
            return name
        time.sleep(0.05)
    raise AssertionError(f"topic {name} not ready with {partitions} partitions on {info}")


@pytest.fixture
def new_topic(request: pytest.FixtureRequest) -> Callable[..., str]:
    test_name = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:80].strip("-")

    def factory(
        info: BrokerInfo,
        partitions: int = 1,
        *,
        prefix: str | None = None,
        config: dict[str, str] | None = None,
    ) -> str:
        name = f"{prefix or test_name}-{uuid.uuid4().hex[:8]}"
        return create_topic(info, name, partitions, config)

    return factory
