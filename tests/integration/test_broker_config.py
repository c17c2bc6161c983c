"""broker_config.metadata_limit: the cluster's offset.metadata.max.bytes, or Kafka's default.

The broker bench.broker starts has no option to change offset.metadata.max.bytes (a read-only
broker setting, so it cannot be altered at run time either): the read is checked against its
default of 4096, with no fallback line logged, and the fallback against an address where
nothing listens.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import pytest
from faults_support import group_name

from pyrallel_consumer.control import broker_config
from pyrallel_consumer.control.offset_metadata import MAX_METADATA_BYTES
from pyrallel_consumer.control.topic_limits import TopicLimits

pytestmark = pytest.mark.integration

FALLBACK_LINE = "could not read the cluster's offset.metadata.max.bytes"


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_reads_the_limit_with_the_consumers_settings(
    kafka_broker: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    errors: list[Any] = []
    # A consumer's full settings: the consumer-only ones and its error callback are left out
    # of the admin client (librdkafka would warn about the former; the latter is the user's).
    config = kafka_broker.consumer_config(
        group_name("limit"),
        **{"error_cb": errors.append, "max.poll.interval.ms": 60_000, "client.id": "limit"},
    )
    assert broker_config.metadata_limit(config, timeout=30.0) == MAX_METADATA_BYTES
    assert FALLBACK_LINE not in caplog.text  # read from the broker, not assumed
    assert not errors


def test_unreachable_cluster_falls_back_to_kafkas_default_with_one_info_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    config = {"bootstrap.servers": f"127.0.0.1:{unused_port()}", "group.id": "nobody"}
    assert broker_config.metadata_limit(config, timeout=1.0) == MAX_METADATA_BYTES
    lines = [r for r in caplog.records if FALLBACK_LINE in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "4096" in lines[0].getMessage()


def test_an_output_topic_is_read_for_its_limit_and_a_missing_one_is_warned_about(
    kafka_broker: Any, new_topic: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """topic_limits.TopicLimits: an existing topic's max.message.bytes is read; a topic that
    does not exist gets a WARNING naming it (before, one INFO line, and its outputs were
    refused some 30 s later)."""
    caplog.set_level(logging.INFO, logger="pyrallel_consumer")
    topic = new_topic(kafka_broker, config={"max.message.bytes": "50000"})
    limits = TopicLimits({"bootstrap.servers": kafka_broker.bootstrap_servers}, timeout=30.0)
    assert limits.limit(topic) == 50_000
    missing = f"{topic}-does-not-exist"
    assert limits.limit(missing) is None
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert f"output topic {missing!r} does not exist" in warned[0].getMessage()
