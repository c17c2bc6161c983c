"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from codec_cases import IMPLEMENTATIONS

from pyrallel_consumer.codec import Codec, load_codec
from pyrallel_consumer.engines.base import Engine


@pytest.fixture(params=IMPLEMENTATIONS)
def codec(request: pytest.FixtureRequest) -> Codec:
    """Each codec implementation in turn (the native one only when built)."""
    return load_codec(request.param)


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    """The engines a test built (it appends each): closed after the test, 5 s each."""
    built: list[Engine] = []
    yield built
    for engine in built:
        engine.close(5.0)


@pytest.fixture
def closing() -> Iterator[list[Any]]:
    """The lane runners a test built (it appends each): closed after the test, 5 s each."""
    runners: list[Any] = []
    yield runners
    for runner in runners:
        runner.close(5.0)
