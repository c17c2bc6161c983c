"""The dead-letter producer on its own (control/dead_letter.py): bounded error headers, the
producer built at the first publish, and every refusal as DeadLetterError naming the record.

These use a real librdkafka producer pointed at a closed local port: the refusals tested here
(too large, local queue full, bad settings, a delivery timing out, a purge at close) happen in
the client, before or without any broker answer. A refusal by a real broker is tested in
tests/integration/test_faults_records.py.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest
from confluent_kafka import KafkaError

from pyrallel_consumer.control.dead_letter import (
    ERROR_MAX_BYTES,
    HEADER_PREFIX,
    TRACEBACK_MAX_BYTES,
    DeadLetterPublisher,
    cut,
    dead_letter_headers,
)
from pyrallel_consumer.errors import DeadLetterError
from pyrallel_consumer.record import Record

DLQ = "orders-dlq"


def closed_port() -> str:
    """A local address where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def publisher(**settings: Any) -> DeadLetterPublisher:
    config = {"bootstrap.servers": closed_port(), "log_level": 0, **settings}
    return DeadLetterPublisher(DLQ, {}, config, queue_full_wait_s=0.2)


def record(offset: int = 3, value: bytes = b"v", key: bytes | None = b"k") -> Record:
    return Record("orders", 0, offset, key, value, [("trace-id", b"abc")], 1)


class Reports:
    """An on_delivered callback that keeps what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str | None, int | None]] = []

    def __call__(self, cause: str | None, code: int | None = None) -> None:
        self.calls.append((cause, code))


# ---- headers ---------------------------------------------------------------------------------


def test_cut_keeps_text_that_fits_whole() -> None:
    assert cut("short", 10, 2) == b"short"


def test_cut_keeps_head_and_tail_and_says_how_much_was_cut() -> None:
    text = "H" * 100 + "m" * 10_000 + "T" * 100
    out = cut(text, 1000, 100)
    assert len(out) <= 1000
    assert out.startswith(b"H" * 100) and out.endswith(b"T" * 100)
    kept = out.count(b"H") + out.count(b"m") + out.count(b"T")
    assert f"[... {len(text) - kept} bytes cut ...]".encode() in out


def test_cut_never_splits_a_character() -> None:
    out = cut("\u2603" * 5000, 1001, 301)  # 3 bytes each: both cuts fall inside one
    assert len(out) <= 1001
    assert "bytes cut" in out.decode("utf-8")  # strict decoding: valid UTF-8


def test_a_huge_traceback_gives_bounded_headers_ending_with_the_exception() -> None:
    error = "Traceback (most recent call last):\n" + '  File "x.py", line 1\n' * 100_000
    error += "RecursionError: maximum recursion depth exceeded\n"
    headers = dict(dead_letter_headers(record(), error, attempts=4))
    traceback, line = headers[HEADER_PREFIX + "traceback"], headers[HEADER_PREFIX + "error"]
    assert isinstance(traceback, bytes) and len(traceback) <= TRACEBACK_MAX_BYTES
    assert traceback.startswith(b"Traceback") and b"bytes cut" in traceback
    assert traceback.rstrip().endswith(b"RecursionError: maximum recursion depth exceeded")
    assert line == b"RecursionError: maximum recursion depth exceeded"
    assert headers["trace-id"] == b"abc"  # the record's own headers come first, unchanged
    assert headers[HEADER_PREFIX + "attempts"] == b"4"


def test_a_huge_error_line_keeps_its_start() -> None:
    headers = dict(dead_letter_headers(record(), "ValueError: " + "x" * 100_000, 1))
    line = headers[HEADER_PREFIX + "error"]
    assert isinstance(line, bytes) and len(line) <= ERROR_MAX_BYTES
    assert line.startswith(b"ValueError: xxx")


# ---- refusals --------------------------------------------------------------------------------


def test_a_dead_letter_over_message_max_bytes_is_refused_with_the_size_limit_and_fix() -> None:
    dead_letters = publisher()
    reports = Reports()
    with pytest.raises(DeadLetterError) as raised:
        dead_letters.publish(record(value=b"b" * 1_500_000), "ValueError: no", 1, reports)
    error = raised.value
    assert (error.topic, error.partition, error.offset, error.dlq_topic) == ("orders", 0, 3, DLQ)
    assert error.code == KafkaError.MSG_SIZE_TOO_LARGE
    message = str(error)
    assert "orders[0]@3" in message and "MSG_SIZE_TOO_LARGE" in message
    assert "value 1,500,000" in message and "message.max.bytes=1,000,000" in message
    assert "dlq_producer_config" in message and "max.message.bytes" in message
    assert dead_letters.unacknowledged == 0 and reports.calls == []
    assert dead_letters.close(0) == 0


def test_settings_librdkafka_rejects_fail_the_first_publish_not_the_constructor() -> None:
    dead_letters = publisher(acks="bogus")  # no producer built yet, so no error yet
    with pytest.raises(DeadLetterError, match=r"orders\[0\]@3.*could not build the dead-letter"):
        dead_letters.publish(record(), "ValueError: no", 1, Reports())
    assert dead_letters.unacknowledged == 0


def test_a_full_local_queue_is_waited_on_briefly_then_refused() -> None:
    dead_letters = publisher(**{"queue.buffering.max.messages": 1})
    first, second = Reports(), Reports()
    dead_letters.publish(record(offset=1), "ValueError: no", 1, first)
    with pytest.raises(DeadLetterError) as raised:
        dead_letters.publish(record(offset=2), "ValueError: no", 1, second)
    assert raised.value.offset == 2 and raised.value.code == KafkaError._QUEUE_FULL
    assert "queue.buffering.max.messages=1" in str(raised.value)
    assert dead_letters.unacknowledged == 1 and second.calls == []

    # Closing gives up on the one queued: it is reported, so its record is not held forever.
    assert dead_letters.close(0.1) == 1
    assert dead_letters.unacknowledged == 0
    ((cause, code),) = first.calls
    assert cause is not None and "PURGE" in cause and code is not None


def test_a_dead_letter_the_broker_never_acknowledges_is_reported_with_its_code() -> None:
    dead_letters = publisher(**{"message.timeout.ms": 100})
    reports = Reports()
    dead_letters.publish(record(), "ValueError: no", 1, reports)
    assert dead_letters.close(30) == 0  # reported (timed out) within the wait, none purged
    ((cause, code),) = reports.calls
    assert code == KafkaError._MSG_TIMED_OUT and cause is not None and "TIMED_OUT" in cause
    assert dead_letters.unacknowledged == 0
    assert dead_letters.close(0) == 0
