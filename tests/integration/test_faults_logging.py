"""Fault 9 of issue 10: a dead broker address.

Pointed at a port where nothing listens, the consumer must log through Python `logging` only
(librdkafka's own stderr lines routed there, not printed next to the library's warning), say
that the broker is unreachable, and rate-limit the repeats instead of logging ~30 lines a
second; run(timeout=...) still returns. With a dead-letter topic, its producer's lines too.
"""

from __future__ import annotations

import logging
import re
import socket

import pytest
from faults_support import group_name

from pyrallel_consumer import ParallelConsumer, Record

pytestmark = pytest.mark.integration

RUN_S = 6.0
MAX_CONNECTION_LINES = 10  # over RUN_S: a first report, then rate-limited reminders
LIBRDKAFKA_STDERR_LINE = re.compile(r"^%\d+\|\d+\.\d+\|", re.MULTILINE)


def noop(record: Record) -> None:
    """Never called: there is no broker."""


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("dlq_topic", [None, "nowhere-dlq"])
def test_an_unreachable_broker_is_logged_once_through_logging_and_rate_limited(
    dlq_topic: str | None, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    port = unused_port()
    consumer = ParallelConsumer(
        {"bootstrap.servers": f"127.0.0.1:{port}", "group.id": group_name("dead-broker")},
        topics=["nowhere"],
        handler=noop,
        engine="async",
        dlq_topic=dlq_topic,
    )
    assert consumer.run(timeout=RUN_S) == 0

    stderr = capfd.readouterr().err
    raw = LIBRDKAFKA_STDERR_LINE.findall(stderr)
    assert not raw, f"{len(raw)} librdkafka lines printed to stderr, e.g.\n{stderr[:600]}"
    about_broker = [
        r for r in caplog.records if r.levelno >= logging.WARNING and str(port) in r.getMessage()
    ]
    assert about_broker, "nothing logged says the broker is unreachable"
    assert len(about_broker) <= MAX_CONNECTION_LINES, (
        f"{len(about_broker)} warnings about the dead broker in {RUN_S:.0f} s, e.g. "
        f"{[r.getMessage() for r in about_broker[:4]]}"
    )
