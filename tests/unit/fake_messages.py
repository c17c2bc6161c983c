"""Fakes of what confluent-kafka hands the control plane: a client error (`FakeKafkaError`,
as librdkafka's error callback or an errored message carries it) and a fetched record
(`FakeMessage`). Used by control_fakes.FakeClient and by the unit tests directly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeKafkaError:
    """A client error as librdkafka's error callback or an errored message carries it."""

    error_code: int
    error_name: str
    text: str
    is_fatal: bool = False

    def fatal(self) -> bool:
        return self.is_fatal

    def retriable(self) -> bool:
        return False

    def code(self) -> int:
        return self.error_code

    def name(self) -> str:
        return self.error_name

    def str(self) -> str:
        return self.text


@dataclass
class FakeMessage:
    """A record as the client's consume() returns it: no error, no headers, timestamp 1."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 0)
