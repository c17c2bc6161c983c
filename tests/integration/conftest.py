"""The `produce` fixture (described in tests/conftest.py), over the shared producer of
support.py: beside it, so that the helper and the fixture have one home; and `own_kafka`, a
broker of the test's own that it can restart (restart_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from restart_support import RestartableKafka
from support import ProducedRecord, produce_records

from bench.broker import BrokerError


@pytest.fixture
def produce() -> Callable[..., list[ProducedRecord]]:
    return produce_records


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[RestartableKafka]:
    try:
        kafka = RestartableKafka(tmp_path / "kafka")
    except BrokerError as exc:
        pytest.fail(f"could not start the kafka broker: {exc}", pytrace=False)
    try:
        yield kafka
    finally:
        kafka.stop()
